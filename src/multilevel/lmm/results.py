"""The immutable result of a linear mixed-model fit."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..design import Design, design_for
from ..errors import DataError
from ..optimize import OptSummary
from ..spec import ModelSpec
from .inference import satterthwaite_df
from .objective import Factor, LmmObjective
from .solution import Solution, conditional_variances, vcov_beta


def _z_times_b(design: Design, b: list[np.ndarray]) -> np.ndarray:
    out = np.zeros(design.n)
    for g, bk in zip(design.groups, b):
        ok = g.codes >= 0
        out[ok] += np.einsum("ij,ij->i", g.values[ok], bk[g.codes[ok]])
    return out


@dataclass(frozen=True)
class LmmFit:
    """A fitted linear mixed model (REML or ML).

    Attributes mirror lme4 + lmerTest: ``fixef``, ``fixef_se``, ``vcov``,
    ``varcorr``, ``sigma``, ``theta``, ``ranef`` / ``ranef_sd`` (conditional modes
    and SDs), ``loglik``, ``deviance``, ``reml_criterion``, ``aic``, ``bic``,
    ``nobs``, ``ngroups``, ``converged``, ``singular``, ``optinfo``.
    """

    spec: ModelSpec
    design: Design = field(repr=False)
    objective: LmmObjective = field(repr=False)
    factor: Factor = field(repr=False)
    solution: Solution = field(repr=False)
    reml: bool
    optinfo: OptSummary
    messages: tuple[str, ...] = ()
    data_name: str = "data"

    # ---- parameters -------------------------------------------------
    @property
    def theta(self) -> np.ndarray:
        return np.asarray(self.optinfo.end)

    @property
    def sigma(self) -> float:
        return self.solution.sigma

    @property
    def fixef(self) -> pd.Series:
        return pd.Series(self.solution.beta, index=list(self.spec.fixed_names), name="Estimate")

    @cached_property
    def vcov(self) -> pd.DataFrame:
        names = list(self.spec.fixed_names)
        C = vcov_beta(self.objective, self.factor, self.sigma)
        return pd.DataFrame(C, index=names, columns=names)

    @property
    def fixef_se(self) -> pd.Series:
        return pd.Series(np.sqrt(np.diag(self.vcov.to_numpy())), index=self.vcov.index, name="Std. Error")

    @cached_property
    def df(self) -> pd.Series:
        """Satterthwaite denominator degrees of freedom (lmerTest's method)."""
        d = satterthwaite_df(self.objective, self.theta, self.sigma)
        return pd.Series(d, index=list(self.spec.fixed_names), name="df")

    @property
    def coef_table(self) -> pd.DataFrame:
        """Estimate, SE, Satterthwaite df, t value and p-value per fixed effect."""
        est, se, df = self.fixef, self.fixef_se, self.df
        t = est / se
        p = 2 * stats.t.sf(np.abs(t.to_numpy()), df.to_numpy())
        return pd.DataFrame({"Estimate": est, "Std. Error": se, "df": df, "t value": t, "Pr(>|t|)": p})

    @cached_property
    def covariances(self) -> dict[str, pd.DataFrame]:
        """Covariance matrix of each grouping factor's random effects."""
        out = {}
        for g, T in zip(self.spec.groupings, self.factor.templates):
            S = self.sigma**2 * (T @ T.T)
            out[g.name] = pd.DataFrame(S, index=list(g.columns), columns=list(g.columns))
        return out

    @cached_property
    def varcorr(self) -> pd.DataFrame:
        """Variance components, one row per variance, correlation and the residual."""
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
        rows.append(("Residual", None, None, self.sigma**2, self.sigma))
        out = pd.DataFrame(rows, columns=["group", "term1", "term2", "variance", "sd_or_corr"], dtype=object)
        return out.astype({"variance": float, "sd_or_corr": float})

    # ---- group effects ----------------------------------------------
    @cached_property
    def ranef(self) -> dict[str, pd.DataFrame]:
        """Conditional modes of the random effects, per grouping factor."""
        return {
            g.name: pd.DataFrame(b, index=pd.Index(g.levels, name=g.name), columns=list(g.columns))
            for g, b in zip(self.spec.groupings, self.solution.b)
        }

    @cached_property
    def condvar(self) -> dict[str, np.ndarray]:
        """Conditional covariance matrices (levels, q, q) of the random effects."""
        cv = conditional_variances(self.objective, self.factor, self.sigma)
        return {g.name: c for g, c in zip(self.spec.groupings, cv)}

    @cached_property
    def ranef_sd(self) -> dict[str, pd.DataFrame]:
        """Conditional SDs of the random effects (lme4's ``condVar``), same shape as ``ranef``."""
        out = {}
        for g in self.spec.groupings:
            sd = np.sqrt(np.maximum(np.diagonal(self.condvar[g.name], axis1=1, axis2=2), 0.0))
            out[g.name] = pd.DataFrame(sd, index=pd.Index(g.levels, name=g.name), columns=list(g.columns))
        return out

    # ---- fit statistics ---------------------------------------------
    @property
    def nobs(self) -> int:
        return self.spec.nobs

    @property
    def ngroups(self) -> dict[str, int]:
        return {g.name: g.n_levels for g in self.spec.groupings}

    @property
    def n_params(self) -> int:
        return self.spec.p + self.spec.theta_map.size + 1

    @property
    def criterion(self) -> float:
        return self.optinfo.fval

    @property
    def reml_criterion(self) -> float | None:
        return self.optinfo.fval if self.reml else None

    @property
    def loglik(self) -> float:
        """Log-likelihood (the REML log-likelihood for REML fits, as lme4)."""
        return -0.5 * self.optinfo.fval

    @cached_property
    def deviance(self) -> float:
        """-2 x ML log-likelihood (for REML fits: at the REML estimates, profiled over sigma)."""
        return self.objective.criterion(self.factor, reml=False)

    @property
    def aic(self) -> float:
        return -2 * self.loglik + 2 * self.n_params

    @property
    def bic(self) -> float:
        return -2 * self.loglik + math.log(self.nobs) * self.n_params

    @property
    def converged(self) -> bool:
        return self.optinfo.converged

    @property
    def singular(self) -> bool:
        return self.optinfo.singular

    # ---- fitted values ----------------------------------------------
    @cached_property
    def fitted(self) -> np.ndarray:
        eta = self.design.X @ self.solution.beta + _z_times_b(self.design, self.solution.b)
        if self.design.offset is not None:
            eta = eta + self.design.offset
        return eta

    @property
    def residuals(self) -> np.ndarray:
        return self.design.y - self.fitted

    def predict(
        self,
        newdata: Any = None,
        *,
        conditional: bool = True,
        new_levels: str = "error",
    ) -> np.ndarray:
        """Predictions for the data used or for ``newdata``.

        Parameters
        ----------
        conditional:
            Include the conditional modes of the random effects (lme4's default);
            ``False`` gives population-level predictions (``re.form = NA``).
        new_levels:
            ``"error"`` (default) refuses grouping levels the model has not seen;
            ``"population"`` predicts them at the population level (random effect
            zero), as lme4's ``allow.new.levels = TRUE``.
        """
        if new_levels not in ("error", "population"):
            raise ValueError("new_levels must be 'error' or 'population'")
        if newdata is None:
            if conditional:
                return self.fitted.copy()
            eta = self.design.X @ self.solution.beta
            return eta + (self.design.offset if self.design.offset is not None else 0.0)
        d = design_for(self.spec, newdata)
        eta = d.X @ self.solution.beta
        if d.offset is not None:
            eta = eta + d.offset
        if conditional:
            for g, gd in zip(self.spec.groupings, d.groups):
                unseen = gd.codes < 0
                if unseen.any() and new_levels == "error":
                    raise DataError(
                        f"newdata has {int(unseen.sum())} rows with levels of {g.name!r} not in the "
                        "fitted model; pass new_levels='population' to predict them at the "
                        "population level, or conditional=False"
                    )
            eta = eta + _z_times_b(d, self.solution.b)
        return eta

    # ---- presentation -----------------------------------------------
    def summary(self) -> str:
        """The lme4 + lmerTest summary as text."""
        from .summary import format_summary

        return format_summary(self)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict:
        """Plain JSON-able data: everything ``summary()`` shows and more."""
        from .summary import fit_to_dict

        return fit_to_dict(self)
