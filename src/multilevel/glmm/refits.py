"""Refits of a GLMM on new responses: one (lme4's ``refit``) or thousands.

One refit keeps the model and starts from the current theta. Many refits (the
parametric bootstrap, the bootstrap test) of a model with one scalar random
effect run on :class:`~multilevel.glmm.batch.BatchLaplace` with the batched
Newton minimizer over ``(theta, beta)``, from the fitted estimates; the others,
and any response the batch does not bring to convergence, are refitted one by
one by the full fit.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np

from ..errors import ModelError
from ..model.replicates import ReplicateFits, check_response, singular_rows
from ..optim import newton
from ..optim.optimize import SINGULAR_TOL
from .batch import BatchLaplace, batchable
from .boundary import PROBE_THETAS


def _binomial_pairs(fit: Any, y: Any) -> Any:
    """``cbind(successes, failures)`` as proportions of the fit's trials."""
    arr = np.asarray(y)
    if not fit.family.trials_response or arr.ndim != 2 or arr.shape[1] != 2:
        return y
    a = arr.astype(float)
    total = a.sum(axis=1)
    trials = fit.design.weights if fit.design.weights is not None else np.ones(fit.design.n)
    if total.shape[0] == trials.shape[0] and not np.allclose(total, trials):
        raise ModelError(
            "the new successes + failures differ from the fit's trials in some rows; a refit keeps "
            "the trials (prior weights): refit with the same totals or fit the new data anew"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, a[:, 0] / total, 0.0)


def refit(fit: Any, y: Any, *, standard_errors: bool = True) -> Any:
    """The same GLMM fitted to response ``y`` from the current theta (lme4's ``refit``).

    ``y`` is on the fit's scale (proportions with the trials as weights for a
    binomial model; ``cbind(successes, failures)`` as a two-column array also works).
    ``standard_errors=False`` leaves them out of the convergence verdict (a bootstrap
    replicate needs only the estimates, and the SEs cost a Hessian).
    """
    from .driver import fit_glmm_result

    v = check_response(fit, _binomial_pairs(fit, y))
    design = dataclasses.replace(fit.design, y=v)
    return fit_glmm_result(
        fit.spec,
        design,
        fit.family,
        nagq=fit.nagq,
        start=fit.theta,
        laplace=fit.laplace,
        result_type=type(fit),
        standard_errors=standard_errors,
    )


def fit_responses(fit: Any, Y: np.ndarray) -> ReplicateFits:
    """Refit ``fit`` to every column of ``Y`` (n, R) from its estimates."""
    Y = np.asarray(Y, dtype=float)
    R, k, p = Y.shape[1], fit.spec.theta_map.size, fit.spec.p
    theta = np.full((R, k), np.nan)
    beta = np.full((R, p), np.nan)
    crit = np.full(R, np.nan)
    sigma = np.full(R, np.nan)
    conv = np.zeros(R, dtype=bool)
    if batchable(fit.spec, fit.family, fit.nagq):
        bl = BatchLaplace(fit.design, fit.family, Y, fit.spec.groupings[0].n_levels)
        x0 = np.r_[fit.theta, fit.fixef.to_numpy()]
        lower = np.r_[fit.spec.theta_map.lower_bounds, np.full(p, -np.inf)]
        res = newton.minimize(bl, np.repeat(x0[None], R, axis=0), lower)
        x, fval = _probe_zero(bl, res.x.copy(), res.fval.copy(), res.converged, lower)
        ok = res.converged & np.isfinite(fval)
        theta[ok], beta[ok], crit[ok] = x[ok, :k], x[ok, k:], fval[ok]
        sigma[ok], conv[ok] = 1.0, True
    batched = int(conv.sum())
    for r in np.flatnonzero(~conv):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                m = refit(fit, Y[:, r], standard_errors=False)
            except (np.linalg.LinAlgError, ValueError, FloatingPointError, ModelError):
                continue
        theta[r], beta[r], crit[r] = m.theta, m.fixef.to_numpy(), m.deviance
        sigma[r], conv[r] = m.sigma, bool(m.converged)
    return ReplicateFits(
        theta=theta,
        beta=beta,
        sigma=sigma,
        criterion=crit,
        converged=conv,
        singular=singular_rows(fit.spec, theta),
        batched=batched,
        re_scale=np.ones(R),
    )


def _probe_zero(
    bl: BatchLaplace, x: np.ndarray, fval: np.ndarray, converged: np.ndarray, lower: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The full fit's scalar boundary probe, batched: a response whose theta stopped at
    0 is probed at ``PROBE_THETAS`` (beta kept); where one is lower, Newton restarts
    there and the lower optimum is kept (as :func:`~multilevel.glmm.boundary.zero_scalar_probe`
    and the restart in the single fit)."""
    idx = np.flatnonzero(converged & (x[:, 0] < SINGULAR_TOL) & np.isfinite(fval))
    if idx.size == 0:
        return x, fval
    best, start = fval[idx].copy(), x[idx].copy()
    for t in PROBE_THETAS:
        pts = x[idx].copy()
        pts[:, 0] = t
        d = bl(pts, idx)
        lower_there = d < best - 1e-9 * np.abs(best)
        best[lower_there], start[lower_there] = d[lower_there], pts[lower_there]
    moved = np.flatnonzero(best < fval[idx] - 1e-9 * np.abs(fval[idx]))
    if moved.size == 0:
        return x, fval
    rows = idx[moved]
    res = newton.minimize(lambda P, w: bl(P, rows[w]), start[moved], lower)
    better = res.converged & (res.fval < fval[rows])
    x[rows[better]], fval[rows[better]] = res.x[better], res.fval[better]
    return x, fval
