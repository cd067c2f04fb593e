"""The immutable result of a generalized linear mixed-model fit.

Deviance conventions: ``deviance`` is -2 x the (Laplace or quadrature)
log-likelihood, so it is comparable across models and with ``aic``/``bic``.
lme4's ``deviance()`` for GLMMs is instead the sum of squared deviance residuals
at the conditional modes; that is ``deviance_residual_sum`` here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from ..family import Family
from ..linalg import numpy_backend as la
from ..linalg.threads import blas_threads
from ..model.design import Design
from ..model.fitted import MixedFitMixin
from ..model.newdata import design_for
from ..model.profile_methods import ProfileMethods
from ..model.pvalues import two_sided_z, wald_interval
from ..model.spec import ModelSpec
from ..model.verdict import is_numerical_failure
from ..optim.numdiff import jacobian_hessian
from ..optim.optimize import OptSummary
from .after_fit import GlmmInferenceMixin
from .fit import GlmmEstimate, deviance_function, gradient_function, hessian_from_gradient
from .gradient import gradient_available
from .pirls import GlmmProblem


@dataclass(frozen=True)
class GlmmResult(MixedFitMixin, ProfileMethods, GlmmInferenceMixin):
    """A fitted GLMM (Laplace for ``nagq = 1``, adaptive quadrature for ``nagq > 1``);
    ``emmeans`` comes from :class:`~multilevel.glmm.after_fit.GlmmInferenceMixin`,
    ``profile`` and ``confint`` from :class:`~multilevel.model.profile_methods.ProfileMethods`."""

    spec: ModelSpec
    design: Design = field(repr=False)
    family: Family
    nagq: int
    estimate: GlmmEstimate = field(repr=False)
    problem: GlmmProblem = field(repr=False)
    optinfo: OptSummary
    messages: tuple[str, ...] = ()
    #: the curvature of the Laplace / quadrature deviance: "observed" (glmmTMB's) or
    #: "expected" (lme4's) information; the two agree for canonical links
    laplace: str = "observed"

    @property
    def approximation(self) -> str:
        """The likelihood approximation, in words: ``"Laplace (observed information)"``,
        ``"adaptive Gauss-Hermite quadrature (nagq = 25, expected information)"``; a
        canonical link, where the two informations agree, names none."""
        if self.nagq == 0:
            return "penalized IRLS only (nagq = 0)"
        info = [] if self.family.canonical else [f"{self.laplace} information"]
        if self.nagq == 1:
            return "Laplace" + (f" ({info[0]})" if info else "")
        return f"adaptive Gauss-Hermite quadrature ({', '.join([f'nagq = {self.nagq}', *info])})"

    # ---- parameters ---------------------------------------------------
    @property
    def theta(self) -> np.ndarray:
        return self.estimate.theta

    @property
    def fixef(self) -> pd.Series:
        return pd.Series(self.estimate.beta, index=list(self.spec.fixed_names), name="Estimate")

    @property
    def dispersion(self) -> float | None:
        """Dispersion (Gaussian variance, Gamma / inverse-Gaussian phi) or NB shape; None if fixed at 1."""
        return self.estimate.disp if self.family.has_dispersion else None

    @property
    def sigma(self) -> float:
        """The family's residual scale (as lme4's ``sigma()``): sqrt of a scale dispersion
        (Gaussian, Gamma, inverse Gaussian), else 1 (binomial, Poisson, negative binomial)."""
        return self.family.residual_sd(self.estimate.disp)

    @cached_property
    def _hessian(self) -> np.ndarray:
        """Hessian of the deviance in (theta, beta[, log disp]) at the estimate: central
        differences of the analytic gradient for Laplace fits, Richardson-extrapolated
        differences of the deviance for quadrature fits."""
        k, p = self.theta.size, self.spec.p
        has_disp = self.problem.estimates_dispersion
        x = np.concatenate(
            [self.theta, self.estimate.beta, [math.log(self.estimate.disp)] if has_disp else []]
        )
        u0 = self.estimate.pirls.u
        try:
            with blas_threads(self.estimate.pirls.system.layout.m):
                if self.nagq <= 1 and gradient_available(self.problem):
                    return hessian_from_gradient(gradient_function(self.problem, k, p, has_disp, u0), x)
                f = deviance_function(self.problem, self.nagq, k, p, has_disp, u0)
                _, H = jacobian_hessian(lambda v: np.array([f(v)]), x, d=1e-3, eps=1e-4, levels=2)
        except Exception as exc:
            # PIRLS fails at a point next to the estimate: no curvature, no standard errors
            if not is_numerical_failure(exc):
                raise
            return np.full((x.size, x.size), np.nan)
        return H

    @cached_property
    def vcov(self) -> pd.DataFrame:
        """Covariance of the fixed effects from the Hessian of the deviance in (theta, beta), as lme4."""
        k, p = self.theta.size, self.spec.p
        H = self._hessian
        if not np.all(np.isfinite(H)):
            V = np.full_like(H, np.nan)
        else:
            try:
                V = 2.0 * np.linalg.inv(H)
            except np.linalg.LinAlgError:
                V = 2.0 * np.linalg.pinv(H)
        names = list(self.spec.fixed_names)
        return pd.DataFrame(V[k : k + p, k : k + p], index=names, columns=names)

    @property
    def fixef_se(self) -> pd.Series:
        return pd.Series(
            np.sqrt(np.maximum(np.diag(self.vcov.to_numpy()), 0)), index=self.vcov.index, name="Std. Error"
        )

    @property
    def coef_table(self) -> pd.DataFrame:
        """Estimate, SE, z value, p-value and the 95% Wald interval per fixed effect."""
        est, se = self.fixef, self.fixef_se
        z = est / se
        p = two_sided_z(z.to_numpy())
        table = pd.DataFrame({"Estimate": est, "Std. Error": se, "z value": z, "Pr(>|z|)": p})
        return table.assign(**wald_interval(est, se))

    # ---- inputs of the shared results -----------------------------------
    @property
    def _templates(self) -> list[np.ndarray]:
        return self.spec.templates(self.theta)

    @property
    def _re_scale(self) -> float:
        return 1.0

    @property
    def _b(self) -> list[np.ndarray]:
        return [u @ T.T for u, T in zip(self.estimate.pirls.u, self._templates)]

    def _condvar_blocks(self) -> list[np.ndarray]:
        # the curvature the Laplace approximation used: the observed information where
        # that is the approximation (and positive definite), else the expected
        r = self.estimate.pirls
        system, factor = r.curvature or (r.system, r.factor)
        return la.conditional_variances(system, factor, 1.0)

    @property
    def _residual_row(self) -> tuple[float, float] | None:
        if self.family.residual_row:
            return (self.estimate.disp, math.sqrt(self.estimate.disp))
        return None

    # ---- fit statistics ---------------------------------------------------
    @property
    def deviance(self) -> float:
        """-2 x log-likelihood (Laplace or quadrature)."""
        return self.estimate.deviance

    @property
    def loglik(self) -> float:
        return -0.5 * self.estimate.deviance

    @property
    def n_params(self) -> int:
        return self.theta.size + self.spec.p + int(self.family.has_dispersion)

    @cached_property
    def deviance_residual_sum(self) -> float:
        """lme4's ``deviance()`` for GLMMs: sum of squared deviance residuals at the modes."""
        return float(self.problem.rows.run("unit_deviance", self.estimate.pirls.state, self.estimate.disp)[1])

    @property
    def reml_criterion(self) -> None:
        return None

    # ---- profiles and intervals (ProfileMethods' hooks) ---------------------
    @property
    def _parameter_names(self) -> tuple[str, ...]:
        from .profile import parameter_names

        return parameter_names(self.spec, self.family)

    @property
    def _n_var(self) -> int:
        return self.theta.size + int(self.family.has_dispersion)

    @property
    def _dense_size(self) -> int:
        return self.estimate.pirls.system.layout.m

    def _profiler(self) -> Any:
        from ..errors import ModelError
        from .profile import GlmmProfiler

        if self.nagq == 0:
            raise ModelError(
                "a nagq=0 fit does not maximize the likelihood, so it has no likelihood profile; "
                "refit with nagq=1 (Laplace) or more"
            )
        est = self.estimate
        se = self.fixef_se.to_numpy()
        return GlmmProfiler(
            self.problem, self.nagq, est.theta, est.beta, est.disp, self.deviance, se, est.pirls.u
        )

    # ---- refits (multilevel.glmm.refits) ------------------------------------
    def refit(self, y: Any) -> GlmmResult:
        """The same model fitted to a new response ``y`` (on the fit's scale: proportions
        for a binomial model with trials, or a two-column ``[successes, failures]``
        array), from this fit's theta: lme4's ``refit``."""
        from .refits import refit

        return refit(self, y)

    def _refit_responses(self, Y: np.ndarray) -> Any:
        """Fits to every column of ``Y`` (n, R) from this fit (the bootstrap's engine)."""
        from .refits import fit_responses

        return fit_responses(self, Y)

    # ---- fitted values ------------------------------------------------------
    @property
    def linear_predictor(self) -> np.ndarray:
        return self.estimate.pirls.eta.copy()

    @property
    def fitted(self) -> np.ndarray:
        """Fitted means (response scale) at the conditional modes."""
        return self.estimate.pirls.mu.copy()

    @property
    def residuals(self) -> np.ndarray:
        """Response residuals y - mu (y as a proportion for binomial)."""
        return self.problem.y - self.fitted

    def predict(
        self,
        newdata: Any = None,
        *,
        type: str = "response",
        conditional: bool = True,
        new_levels: str = "error",
        offset: Any = None,
    ) -> np.ndarray:
        """Predictions on the link (``type="link"``) or response scale.

        ``newdata`` is encoded as the fitted data were (fitted levels matched by name,
        an unseen fixed-effect level is a ``DataError``) and supplies the fitted
        ``offset=`` column and the ``offset()`` terms; rows with missing values get
        NaN. ``conditional``, ``new_levels`` and ``offset`` are as in
        :meth:`multilevel.lmm.results.LmmFit.predict`.
        """
        if type not in ("link", "response"):
            raise ValueError("type must be 'link' or 'response'")
        if new_levels not in ("error", "population"):
            raise ValueError("new_levels must be 'error' or 'population'")
        if newdata is None:
            if offset is not None:
                raise ValueError("offset= goes with newdata; the data used already have their offset")
            eta = self.problem.offset + self.problem.X @ self.estimate.beta
            if conditional:
                eta = self.estimate.pirls.eta
            return np.asarray(eta if type == "link" else self.family.link.inverse(eta))
        d = design_for(self.spec, newdata, offset=offset, groups=conditional, na_action="pass")
        eta = d.X @ self.estimate.beta + (d.offset if d.offset is not None else 0.0)
        if conditional:
            eta = eta + self._random_part(d, new_levels)
        return d.to_input_rows(np.asarray(eta if type == "link" else self.family.link.inverse(eta)))
