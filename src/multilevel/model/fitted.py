"""What every mixed-model fit reports the same way: variance components and group effects.

A fit class supplies ``spec``, ``_templates`` (the relative covariance factors),
``_re_scale`` (sigma for LMMs, 1 or the dispersion scale for GLMMs),
``_b`` (conditional modes per grouping block), ``_condvar_blocks()`` and
``_residual_row`` (variance and SD of the residual, or None).
"""

from __future__ import annotations

import math
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import DataError

if TYPE_CHECKING:
    from .spec import ModelSpec


class InformationCriteria:
    """AIC and BIC from a fit's ``loglik``, ``n_params`` and ``nobs`` (which the fit
    class supplies)."""

    @property
    def aic(self) -> float:
        fit: Any = self
        return -2 * fit.loglik + 2 * fit.n_params

    @property
    def bic(self) -> float:
        fit: Any = self
        return -2 * fit.loglik + math.log(fit.nobs) * fit.n_params


class MixedFitMixin(InformationCriteria):
    spec: ModelSpec
    optinfo: Any  # multilevel.optim.optimize.OptSummary

    # supplied by the fit class
    @property
    def loglik(self) -> float:
        raise NotImplementedError

    @property
    def n_params(self) -> int:
        raise NotImplementedError

    @property
    def _templates(self) -> list[np.ndarray]:
        raise NotImplementedError

    @property
    def _re_scale(self) -> float:
        raise NotImplementedError

    @property
    def _b(self) -> list[np.ndarray]:
        raise NotImplementedError

    def _condvar_blocks(self) -> list[np.ndarray]:
        raise NotImplementedError

    @property
    def _residual_row(self) -> tuple[float, float] | None:
        raise NotImplementedError

    # shared results
    @cached_property
    def covariances(self) -> dict[str, pd.DataFrame]:
        """Covariance matrix of each grouping factor's random effects."""
        out = {}
        for g, T in zip(self.spec.groupings, self._templates):
            S = self._re_scale**2 * (T @ T.T)
            out[g.name] = pd.DataFrame(S, index=list(g.columns), columns=list(g.columns))
        return out

    @cached_property
    def varcorr(self) -> pd.DataFrame:
        """Variance components: one row per variance, one per correlation, and the residual."""
        rows: list[tuple[str, str | None, str | None, float, float]] = []
        for g in self.spec.groupings:
            S = self.covariances[g.name].to_numpy()
            for t in g.terms:
                idx = list(range(t.offset, t.offset + t.q))
                for i in idx:
                    rows.append((g.name, g.columns[i], None, S[i, i], math.sqrt(max(S[i, i], 0.0))))
                for a, i in enumerate(idx):
                    for j in idx[a + 1 :]:
                        denom = math.sqrt(S[i, i] * S[j, j])
                        corr = S[i, j] / denom if denom > 0 else float("nan")
                        rows.append((g.name, g.columns[i], g.columns[j], S[i, j], corr))
        res = self._residual_row
        if res is not None:
            rows.append(("Residual", None, None, res[0], res[1]))
        out = pd.DataFrame(rows, columns=["group", "term1", "term2", "variance", "sd_or_corr"], dtype=object)
        return out.astype({"variance": float, "sd_or_corr": float})

    @cached_property
    def ranef(self) -> dict[str, pd.DataFrame]:
        """Conditional modes of the random effects, per grouping factor."""
        return {
            g.name: pd.DataFrame(b, index=pd.Index(g.levels, name=g.name), columns=list(g.columns))
            for g, b in zip(self.spec.groupings, self._b)
        }

    @cached_property
    def condvar(self) -> dict[str, np.ndarray]:
        """Conditional covariance matrices (levels, q, q) of the random effects."""
        return {g.name: c for g, c in zip(self.spec.groupings, self._condvar_blocks())}

    @cached_property
    def ranef_sd(self) -> dict[str, pd.DataFrame]:
        """Conditional SDs of the random effects (lme4's ``condVar``), same shape as ``ranef``."""
        out = {}
        for g in self.spec.groupings:
            sd = np.sqrt(np.maximum(np.diagonal(self.condvar[g.name], axis1=1, axis2=2), 0.0))
            out[g.name] = pd.DataFrame(sd, index=pd.Index(g.levels, name=g.name), columns=list(g.columns))
        return out

    def _random_part(self, design: Any, new_levels: str) -> np.ndarray:
        """``Z b`` for a design built from new data; unseen levels get 0 or an error."""
        if new_levels not in ("error", "population"):
            raise ValueError("new_levels must be 'error' or 'population'")
        for g, gd in zip(self.spec.groupings, design.groups):
            unseen = gd.codes < 0
            if unseen.any() and new_levels == "error":
                k, n_new = int(unseen.sum()), int(-gd.codes.min())
                raise DataError(
                    f"newdata has {k} row{'s' if k > 1 else ''} with {n_new} level{'s' if n_new > 1 else ''} "
                    f"of {g.name!r} not in the fitted model; pass new_levels='population' to predict "
                    "them at the population level, or conditional=False"
                )
        from .design import z_times_b

        return z_times_b(design, self._b)

    def ranef_values(self) -> list[np.ndarray]:
        """Conditional modes as arrays (levels, q), one per grouping block."""
        return list(self._b)

    def simulate(self, n: int = 1, *, seed: int = 0, use_modes: bool = False) -> np.ndarray:
        """``n`` parametric simulations of the response (n, nobs); new group effects are
        drawn from their fitted distribution unless ``use_modes``."""
        from .simulate import simulate_responses

        return simulate_responses(self, n, seed=seed, use_modes=use_modes)

    @property
    def nobs(self) -> int:
        return self.spec.nobs

    @property
    def converged(self) -> bool:
        return bool(self.optinfo.converged)

    @property
    def singular(self) -> bool:
        return bool(self.optinfo.singular)

    @property
    def ngroups(self) -> dict[str, int]:
        return {g.name: g.n_levels for g in self.spec.groupings}
