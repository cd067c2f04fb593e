"""Parametric simulation from fitted models and prediction intervals.

``simulate_responses`` draws new responses at the fitted parameters, with new
group effects drawn from their fitted distribution (lme4's ``simulate()``
default) or, with ``use_modes=True``, at the conditional modes.
``prediction_interval`` gives intervals for new observations of an LMM:
``Var = x' V_beta x + z' C z + sigma^2`` with ``C`` the conditional covariance of
the group effects (conditional predictions) or their fitted covariance (a new
group), ignoring the covariance of beta-hat with the group effects (as
merTools' ``predictInterval`` does).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from .design import z_times_b


def _draw_group_effects(fit: Any, rng: np.random.Generator) -> list[np.ndarray]:
    out = []
    for g in fit.spec.groupings:
        S = fit.covariances[g.name].to_numpy()
        lam, Q = np.linalg.eigh(S)
        root = Q * np.sqrt(np.maximum(lam, 0))
        out.append(rng.standard_normal((g.n_levels, g.q)) @ root.T)
    return out


def simulate_responses(fit: Any, n: int = 1, *, seed: int = 0, use_modes: bool = False) -> np.ndarray:
    """``n`` simulated response vectors (n, nobs) at the fitted parameters."""
    rng = np.random.default_rng(seed)
    d = fit.design
    fixed = d.X @ fit.fixef.to_numpy() + (d.offset if d.offset is not None else 0.0)
    family = getattr(fit, "family", None)
    out = np.empty((n, d.n))
    for i in range(n):
        b = fit.ranef_values() if use_modes else _draw_group_effects(fit, rng)
        eta = fixed + z_times_b(d, b)
        if family is None:  # linear mixed model
            out[i] = eta + rng.normal(scale=fit.sigma, size=d.n) / np.sqrt(
                d.weights if d.weights is not None else 1.0
            )
            continue
        mu = family.link.inverse(eta)
        out[i] = family.random(mu, fit.problem.w0, fit.estimate.disp, rng)
    return out


def prediction_interval(
    fit: Any, newdata: Any = None, *, level: float = 0.95, conditional: bool = True, new_levels: str = "error"
) -> pd.DataFrame:
    """Point predictions with standard errors and intervals for new observations (LMMs)."""
    from .newdata import design_for

    d = fit.design if newdata is None else design_for(fit.spec, newdata)
    beta = fit.fixef.to_numpy()
    V = fit.vcov.to_numpy()
    pred = d.X @ beta + (d.offset if d.offset is not None else 0.0)
    var = np.einsum("ij,jk,ik->i", d.X, V, d.X)
    if conditional:
        pred = pred + (
            fit._random_part(d, new_levels) if newdata is not None else z_times_b(d, fit.ranef_values())
        )
    for g, gd in zip(fit.spec.groupings, d.groups):
        cov_new = fit.covariances[g.name].to_numpy()
        known = gd.codes >= 0
        if conditional:
            cv = fit.condvar[g.name]
            var[known] += np.einsum("ij,ijk,ik->i", gd.values[known], cv[gd.codes[known]], gd.values[known])
            var[~known] += np.einsum("ij,jk,ik->i", gd.values[~known], cov_new, gd.values[~known])
        else:
            var += np.einsum("ij,jk,ik->i", gd.values, cov_new, gd.values)
    se_fit = np.sqrt(var)
    se_pred = np.sqrt(var + fit.sigma**2)
    z = special.ndtri(0.5 + level / 2)
    return pd.DataFrame(
        {"fit": pred, "se_fit": se_fit, "lower": pred - z * se_pred, "upper": pred + z * se_pred}
    )
