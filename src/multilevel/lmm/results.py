"""The immutable result of a linear mixed-model fit."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from ..linalg.threads import blas_threads
from ..model.design import Design, z_times_b
from ..model.fitted import MixedFitMixin
from ..model.newdata import design_for
from ..model.profile_methods import ProfileMethods
from ..model.pvalues import two_sided_t, wald_interval
from ..model.spec import ModelSpec
from ..optim.optimize import OptSummary
from .after_fit import LmmInferenceMixin
from .inference import satterthwaite_df
from .objective import Factor, LmmObjective
from .solution import Solution, conditional_variances, vcov_beta


@dataclass(frozen=True)
class LmmResult(MixedFitMixin, ProfileMethods, LmmInferenceMixin):
    """A fitted linear mixed model (REML or ML): estimates and what follows from them.

    Rendering (``summary()``, ``to_dict()``, plots, reports) is added by
    :class:`multilevel.present.lmm_fit.LmmFit`, which :func:`multilevel.fit` returns.

    Attributes mirror lme4 + lmerTest: ``fixef``, ``fixef_se``, ``vcov``,
    ``varcorr``, ``sigma``, ``theta``, ``ranef`` / ``ranef_sd`` (conditional modes
    and SDs), ``loglik``, ``deviance``, ``reml_criterion``, ``aic``, ``bic``,
    ``nobs``, ``ngroups``, ``converged``, ``singular``, ``optinfo``; F tests
    (``anova``, ``test``, ``krmodcomp``, ``vcov_kr``, ``emmeans``) come from
    :class:`~multilevel.lmm.after_fit.LmmInferenceMixin`, profiles and intervals
    (``profile``, ``confint``) from :class:`~multilevel.model.profile_methods.ProfileMethods`.
    """

    spec: ModelSpec
    design: Design = field(repr=False)
    objective: LmmObjective = field(repr=False)
    factor: Factor = field(repr=False)
    solution: Solution = field(repr=False)
    reml: bool
    optinfo: OptSummary
    messages: tuple[str, ...] = ()
    # vcov(beta) where the fit has it already (the compiled one-block kernels), else None
    known_vcov: np.ndarray | None = field(default=None, repr=False, compare=False)

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
    def _vcov_array(self) -> np.ndarray:
        if self.known_vcov is not None:
            return self.known_vcov
        return np.asarray(vcov_beta(self.objective, self.factor, self.sigma))

    @cached_property
    def vcov(self) -> pd.DataFrame:
        names = list(self.spec.fixed_names)
        return pd.DataFrame(self._vcov_array, index=names, columns=names)

    @property
    def fixef_se(self) -> pd.Series:
        return pd.Series(
            np.sqrt(np.diag(self._vcov_array)), index=list(self.spec.fixed_names), name="Std. Error"
        )

    def finite_numbers(self) -> dict[str, Any]:
        """What :func:`multilevel.model.verdict.finite_verdict` checks, as arrays."""
        return {
            "log-likelihood": float(self.loglik),
            "fixed effects": self.solution.beta,
            "variance parameters (theta)": tuple(self.optinfo.end),
            "residual scale": float(self.sigma),
            "random effects": [np.ravel(b) for b in self.solution.b],
            "standard errors": lambda: np.sqrt(np.diag(self._vcov_array)),
        }

    @cached_property
    def df(self) -> pd.Series:
        """Satterthwaite denominator degrees of freedom (lmerTest's method)."""
        with blas_threads(self.objective.layout.m):
            d = satterthwaite_df(self.objective, self.theta, self.sigma)
        return pd.Series(d, index=list(self.spec.fixed_names), name="df")

    @property
    def coef_table(self) -> pd.DataFrame:
        """Estimate, SE, Satterthwaite df, t value, p-value and the 95% Wald interval
        (normal quantiles, as lme4's ``confint(method = "Wald")``) per fixed effect."""
        est, se, df = self.fixef, self.fixef_se, self.df
        t = est / se
        p = two_sided_t(t.to_numpy(), df.to_numpy())
        table = pd.DataFrame({"Estimate": est, "Std. Error": se, "df": df, "t value": t, "Pr(>|t|)": p})
        return table.assign(**wald_interval(est, se))

    # ---- inputs of the shared results (MixedFitMixin) -----------------
    @property
    def _templates(self) -> list[np.ndarray]:
        return list(self.factor.templates)

    @property
    def _re_scale(self) -> float:
        return self.sigma

    @property
    def _b(self) -> list[np.ndarray]:
        return self.solution.b

    def _condvar_blocks(self) -> list[np.ndarray]:
        return conditional_variances(self.objective, self.factor, self.sigma)

    @property
    def _residual_row(self) -> tuple[float, float] | None:
        if self.objective.sigma_fixed is not None:
            return None  # known residual SEs: no residual variance is estimated
        return (self.sigma**2, self.sigma)

    # ---- fit statistics ---------------------------------------------
    @property
    def n_params(self) -> int:
        return self.spec.p + self.spec.theta_map.size + int(self.objective.sigma_fixed is None)

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

    # ---- profiles and intervals (ProfileMethods' hooks) ---------------
    @property
    def _parameter_names(self) -> tuple[str, ...]:
        from .profile import parameter_names

        return parameter_names(self.objective)

    @property
    def _n_var(self) -> int:
        return self.spec.theta_map.size + int(self.objective.sigma_fixed is None)

    @property
    def _dense_size(self) -> int:
        return self.objective.layout.m

    def _profiler(self) -> Any:
        from .profile import LmmProfiler

        return LmmProfiler(self.objective, self.theta, self.fixef_se.to_numpy())

    # ---- refits (multilevel.lmm.refits) -------------------------------
    def refit(self, y: Any) -> LmmResult:
        """The same model fitted to a new response ``y`` (one value per row used), from
        this fit's optimum: lme4's ``refit``. Design and cross-products of ``[Z X]`` are kept."""
        from .refits import refit

        return refit(self, y)

    def _refit_responses(self, Y: np.ndarray) -> Any:
        """Fits to every column of ``Y`` (n, R) from this optimum (the bootstrap's engine)."""
        from .refits import fit_responses

        return fit_responses(self, Y, start=self.theta)

    # ---- fitted values ----------------------------------------------
    @cached_property
    def fitted(self) -> np.ndarray:
        eta = self.design.X @ self.solution.beta + z_times_b(self.design, self.solution.b)
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
        offset: Any = None,
    ) -> np.ndarray:
        """Predictions for the data used or for ``newdata``.

        Parameters
        ----------
        newdata:
            A table (any type ``fit`` accepts) with the predictor columns, encoded as
            in the fit: a fitted categorical column matches new values by level name
            (an integer 1 is the level ``"1"``) and an unseen level is a ``DataError``.
            The fitted ``offset=`` column and the formula's ``offset()`` terms are read
            from it. Rows with missing values get NaN (lme4's ``na.action = na.pass``).
        conditional:
            Include the conditional modes of the random effects (lme4's default);
            ``False`` gives population-level predictions (``re.form = NA``), which
            need no grouping columns.
        new_levels:
            ``"error"`` (default) refuses grouping levels the model has not seen;
            ``"population"`` predicts them at the population level (random effect
            zero), as lme4's ``allow.new.levels = TRUE``.
        offset:
            The ``offset=`` part for ``newdata`` (a column name or one value per row)
            instead of the fitted column; required when the fit's ``offset=`` was an array.

        Examples
        --------
        >>> import multilevel
        >>> m = multilevel.fit("Reaction ~ Days + (Days | Subject)", multilevel.load_dataset("sleepstudy"))
        >>> bool(abs(m.predict(multilevel.load_dataset("sleepstudy"))[0] - m.fitted[0]) < 1e-9)
        True
        """
        if new_levels not in ("error", "population"):
            raise ValueError("new_levels must be 'error' or 'population'")
        if newdata is None:
            if offset is not None:
                raise ValueError("offset= goes with newdata; the data used already have their offset")
            if conditional:
                return self.fitted.copy()
            eta = self.design.X @ self.solution.beta
            return eta + (self.design.offset if self.design.offset is not None else 0.0)
        d = design_for(self.spec, newdata, offset=offset, groups=conditional, na_action="pass")
        eta = d.X @ self.solution.beta
        if d.offset is not None:
            eta = eta + d.offset
        if conditional:
            eta = eta + self._random_part(d, new_levels)
        return d.to_input_rows(eta)

    def predict_interval(
        self, newdata: Any = None, *, level: float = 0.95, conditional: bool = True, new_levels: str = "error"
    ) -> pd.DataFrame:
        """Predictions with SEs and prediction intervals for new observations."""
        from ..model.simulate import prediction_interval

        return prediction_interval(self, newdata, level=level, conditional=conditional, new_levels=new_levels)
