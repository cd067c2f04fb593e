"""The immutable result of a nonlinear mixed-model fit, with the surface of the LMM
and GLMM results: fixed effects and SEs, variance components, log-likelihood and
information criteria, conditional modes, predictions and simulation.

``loglik`` is the Laplace log-likelihood for ``nagq = 1`` (lme4's ``nlmer``) and the
marginal log-likelihood by adaptive Gauss-Hermite quadrature for ``nagq > 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from ..model.data import to_pandas
from ..model.fitted import InformationCriteria
from ..model.newdata import design_for
from ..model.nonlinear import NlmmProblem
from ..model.profile_methods import ProfileMethods
from ..model.pvalues import two_sided_z
from ..optim.optimize import OptSummary
from .fit import NlmmEstimate


@dataclass(frozen=True)
class NlmmResult(InformationCriteria, ProfileMethods):
    """A fitted nonlinear mixed model (Laplace for ``nagq = 1``, adaptive quadrature
    for ``nagq > 1``)."""

    problem: NlmmProblem = field(repr=False)
    estimate: NlmmEstimate = field(repr=False)
    nagq: int
    optinfo: OptSummary
    messages: tuple[str, ...] = ()

    # ---- what was fitted ----------------------------------------------------
    @property
    def formula(self) -> str:
        return self.problem.mean.formula

    @property
    def params(self) -> dict[str, str]:
        """Each parameter's mixed-model formula."""
        return dict(zip(self.problem.param_names, self.problem.param_formulas))

    @property
    def nobs(self) -> int:
        return self.problem.n

    @property
    def n_missing(self) -> int:
        """Rows of the data dropped for missing values."""
        return self.problem.n_missing

    @property
    def method(self) -> str:
        return "Laplace" if self.nagq == 1 else f"adaptive Gauss-Hermite quadrature (nAGQ = {self.nagq})"

    # ---- parameters ---------------------------------------------------------
    @property
    def theta(self) -> np.ndarray:
        return self.estimate.theta

    @property
    def sigma(self) -> float:
        """The residual standard deviation (NaN for a binomial or Poisson response)."""
        return self.estimate.sigma if self.problem.gaussian else math.nan

    @property
    def family(self) -> str:
        fam = self.problem.family
        return "gaussian" if fam is None else f"{fam.name} ({fam.link.name} link)"

    @property
    def fixef(self) -> pd.Series:
        return pd.Series(self.estimate.beta, index=list(self.problem.beta_names), name="Estimate")

    @property
    def vcov(self) -> pd.DataFrame:
        """Covariance of the fixed effects: twice the inverse Hessian of the deviance over
        (beta, theta[, log sigma]), its fixed-effect block."""
        names = list(self.problem.beta_names)
        return pd.DataFrame(self.estimate.vcov, index=names, columns=names)

    # ---- profiles (multilevel.model.profile_methods) ---------------------------
    def _profiler(self) -> Any:
        from .profile import NlmmProfiler

        return NlmmProfiler(self)

    @property
    def _parameter_names(self) -> tuple[str, ...]:
        return tuple(self._profiler().names)

    @property
    def _n_var(self) -> int:
        return self.problem.n_theta + int(self.problem.gaussian)

    @property
    def _dense_size(self) -> int:
        return self.problem.q

    @property
    def fixef_se(self) -> pd.Series:
        return self.se

    @property
    def se(self) -> pd.Series:
        return pd.Series(
            np.sqrt(np.diag(self.estimate.vcov)), index=list(self.problem.beta_names), name="Std. Error"
        )

    @cached_property
    def coef_table(self) -> pd.DataFrame:
        """Estimate, standard error, z value and two-sided p value of each fixed effect."""
        est, se = self.fixef.to_numpy(), self.se.to_numpy()
        with np.errstate(divide="ignore", invalid="ignore"):
            z = est / se
        return pd.DataFrame(
            {"Estimate": est, "Std. Error": se, "z value": z, "Pr(>|z|)": two_sided_z(z)},
            index=list(self.problem.beta_names),
        )

    # ---- likelihood -------------------------------------------------------
    @property
    def deviance(self) -> float:
        """-2 x the log-likelihood."""
        return self.estimate.deviance

    @property
    def loglik(self) -> float:
        return -0.5 * self.estimate.deviance

    @property
    def n_params(self) -> int:
        return self.problem.p + self.problem.n_theta + int(self.problem.gaussian)

    @property
    def converged(self) -> bool:
        return bool(self.optinfo.converged and math.isfinite(self.deviance))

    @property
    def singular(self) -> bool:
        return self.optinfo.singular

    # ---- random effects ---------------------------------------------------
    def _templates(self) -> list[np.ndarray]:
        """The relative covariance factor of each covariance group (``problem.groups``)."""
        pr = self.problem
        out = [np.zeros((pr.group_q(g), pr.group_q(g))) for g in range(len(pr.groups))]
        for v, g, r, c in zip(self.theta, pr.theta_blocks, pr.theta_rows, pr.theta_cols):
            out[int(g)][r, c] = v
        return out

    def _group_columns(self, g: int) -> list[str]:
        return [c for b in self.problem.groups[g] for c in self._columns(b)]

    def _columns(self, k: int) -> list[str]:
        blk = self.problem.blocks[k]
        name = self.problem.param_names[blk.param]
        g = next(g for g in self.problem.specs[blk.param].groupings if g.name == blk.grouping)
        return [name if c == "Intercept" else f"{name}:{c}" for c in g.columns]

    @cached_property
    def varcorr(self) -> pd.DataFrame:
        """Variance components: one row per variance, one per correlation, and the residual."""
        rows: list[tuple[str, str | None, str | None, float, float]] = []
        for k, T in enumerate(self._templates()):
            grouping = self.problem.blocks[self.problem.groups[k][0]].grouping
            S = self.estimate.sigma**2 * (T @ T.T)
            cols = self._group_columns(k)
            q = len(cols)
            for i in range(q):
                rows.append((grouping, cols[i], None, S[i, i], math.sqrt(max(S[i, i], 0.0))))
            for i in range(q):
                for j in range(i + 1, q):
                    denom = math.sqrt(S[i, i] * S[j, j])
                    rows.append(
                        (grouping, cols[i], cols[j], S[i, j], S[i, j] / denom if denom > 0 else math.nan)
                    )
        if self.problem.gaussian:
            rows.append(("Residual", None, None, self.sigma**2, self.sigma))
        out = pd.DataFrame(rows, columns=["group", "term1", "term2", "variance", "sd_or_corr"], dtype=object)
        return out.astype({"variance": float, "sd_or_corr": float})

    @cached_property
    def ranef(self) -> dict[str, pd.DataFrame]:
        """Conditional modes of the random effects, per grouping factor (one column per
        parameter and term)."""
        parts: dict[str, list[pd.DataFrame]] = {}
        for k, blk in enumerate(self.problem.blocks):
            vals = self.estimate.b[blk.offset : blk.offset + blk.q * blk.n_levels].reshape(
                blk.n_levels, blk.q
            )
            g = next(g for g in self.problem.specs[blk.param].groupings if g.name == blk.grouping)
            parts.setdefault(blk.grouping, []).append(
                pd.DataFrame(vals, index=pd.Index(g.levels, name=blk.grouping), columns=self._columns(k))
            )
        return {name: pd.concat(dfs, axis=1) for name, dfs in parts.items()}

    @property
    def ngroups(self) -> dict[str, int]:
        return {b.grouping: b.n_levels for b in self.problem.blocks}

    # ---- fitted values, prediction, simulation ---------------------------------
    @property
    def fitted(self) -> np.ndarray:
        """Group-level fitted values (the mean response at the conditional modes)."""
        return np.asarray(self.estimate.fitted)

    @property
    def residuals(self) -> np.ndarray:
        """Response residuals ``y - fitted``."""
        return self.problem.y - self.fitted

    @property
    def pearson_residuals(self) -> np.ndarray:
        """Residuals over their SD: ``sigma`` (Gaussian) or ``sqrt(V(mu) / w)``."""
        pr = self.problem
        if pr.gaussian:
            return self.residuals / self.sigma
        w = pr.weights if pr.weights is not None else np.ones(pr.n)
        return self.residuals / np.sqrt(pr.family.variance(self.fitted, 1.0) / w)

    def _response(self, eta: np.ndarray, scale: str) -> np.ndarray:
        if scale not in ("response", "link"):
            raise ValueError("scale must be 'response' or 'link'")
        if self.problem.gaussian or scale == "link":
            return eta
        return np.asarray(self.problem.family.link.inverse(eta))

    def predict(
        self,
        newdata: Any = None,
        *,
        conditional: bool = True,
        new_levels: str = "error",
        scale: str = "response",
    ) -> np.ndarray:
        """Predicted means: at the conditional modes (``conditional=True``, group level) or
        with the random effects at zero (population level). Levels not in the fit are
        refused (``new_levels="error"``) or predicted at the population level
        (``"population"``). A binomial or Poisson model predicts the mean response
        (``scale="response"``) or the expression itself, the linear predictor (``"link"``)."""
        pr = self.problem
        if newdata is None:
            b = self.estimate.b if conditional else None
            return self._response(pr.mean_numpy(pr.phi(self.estimate.beta, b)), scale)
        if new_levels not in ("error", "population"):
            raise ValueError("new_levels must be 'error' or 'population'")
        df = to_pandas(newdata)
        missing = [c for c in pr.covariates if c not in df.columns]
        if missing:
            raise DataError(
                f"newdata lacks the covariate column(s) {', '.join(missing)} of the nonlinear formula"
            )
        phi = np.column_stack(
            [self._new_phi(k, df, conditional, new_levels) for k in range(len(pr.param_names))]
        )
        covs = {c: df[c].to_numpy(dtype=float) for c in pr.covariates}
        return self._response(pr.mean_numpy(phi, covs), scale)

    def _new_phi(self, k: int, df: pd.DataFrame, conditional: bool, new_levels: str) -> np.ndarray:
        pr = self.problem
        spec = pr.specs[k]
        design = design_for(spec, df, groups=conditional and bool(spec.groupings))
        out = design.X @ self.estimate.beta[pr.beta_slices[k]]
        if not conditional:
            return out
        blocks = [b for b in pr.blocks if b.param == k]
        for blk, gd in zip(blocks, design.groups):
            unseen = gd.codes < 0
            if unseen.any() and new_levels == "error":
                raise DataError(
                    f"newdata has {int(unseen.sum())} row(s) with levels of {blk.grouping!r} not in the "
                    "fitted model; pass new_levels='population' to predict them at the population level, or "
                    "conditional=False"
                )
            vals = self.estimate.b[blk.offset : blk.offset + blk.q * blk.n_levels].reshape(
                blk.n_levels, blk.q
            )
            eff = np.where(unseen[:, None], 0.0, vals[np.maximum(gd.codes, 0)])
            out = out + np.sum(gd.values * eff, axis=1)
        return out

    def simulate(self, n: int = 1, *, seed: int = 0, use_modes: bool = False) -> np.ndarray:
        """Responses simulated from the fitted model, shape (nobs, n): new random effects
        for every replicate (or the conditional modes with ``use_modes=True``) and new
        residuals."""
        pr = self.problem
        rng = np.random.default_rng(seed)
        Lam = pr.lambda_matrix(self.theta)
        out = np.empty((pr.n, n))
        scale = self.estimate.sigma
        w = pr.weights if pr.weights is not None else np.ones(pr.n)
        for j in range(n):
            b = self.estimate.b if use_modes else Lam @ rng.normal(0.0, scale, pr.q)
            eta = pr.mean_numpy(pr.phi(self.estimate.beta, b))
            if pr.gaussian:
                out[:, j] = eta + rng.normal(0.0, scale, pr.n)
            else:
                out[:, j] = pr.family.random(pr.family.link.inverse(eta), w, 1.0, rng)
        return out
