"""``profile()`` and ``confint()`` of a fitted mixed model, as lme4's.

A light mixin (the profiling machinery of :mod:`multilevel.model.profile` is
imported when a profile is asked for, so that a fit does not load it).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

    from ..optim.profile import Profiler
    from .profile import Profile


class ProfileMethods:
    """``profile()`` and ``confint()`` of a fit, from its hooks: ``_profiler()`` (a
    :class:`~multilevel.optim.profile.Profiler`), ``_parameter_names``, ``_n_var`` (how many
    of them are variance parameters), ``_dense_size`` (of its factor, for the BLAS thread
    policy of :mod:`multilevel.linalg.threads`), ``fixef`` and ``fixef_se``."""

    @property
    def _dense_size(self) -> int:
        raise NotImplementedError

    @property
    def _parameter_names(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def _n_var(self) -> int:
        raise NotImplementedError

    @property
    def fixef(self) -> pd.Series:
        raise NotImplementedError

    @property
    def fixef_se(self) -> pd.Series:
        raise NotImplementedError

    def _profiler(self) -> Profiler:
        raise NotImplementedError

    def profile(self, parm: Any = None, *, alphamax: float = 0.01, points: int = 8) -> Profile:
        """lme4's ``profile()``: zeta = sign(p - p_hat) sqrt(deviance(p) - deviance_min) for
        every parameter (or those in ``parm``), the others re-optimized at each point.

        Linear mixed models are profiled on the ML deviance, REML fits included (as
        lme4, which refits them by ML); GLMMs on their Laplace or quadrature deviance.
        Each trace reaches ``|zeta| = sqrt(qchisq(1 - alphamax, number of parameters))``
        or the parameter's bound, with ``points`` points on each side.

        Examples
        --------
        >>> import multilevel
        >>> m = multilevel.fit("Yield ~ 1 + (1 | Batch)", multilevel.load_dataset("Dyestuff"))
        >>> pr = m.profile()
        >>> pr.names
        ('sd_(Intercept)|Batch', 'sigma', 'Intercept')
        >>> round(float(pr.confint().loc["sigma", "upper"]), 2)
        67.66
        """
        from ..linalg.threads import blas_threads
        from .profile import profile_model

        with blas_threads(self._dense_size):
            return profile_model(self._profiler(), self._n_var, parm, alphamax=alphamax, points=points)

    def confint(
        self,
        parm: Any = None,
        level: float = 0.95,
        method: str = "profile",
        *,
        nsim: int = 500,
        boot_type: str = "perc",
        seed: int | None = None,
    ) -> pd.DataFrame:
        """Confidence intervals, as lme4's ``confint(fit, parm, level, method)``.

        Parameters
        ----------
        parm:
            Parameter names (``"sd_(Intercept)|Subject"``, ``"sigma"``, ``"Days"``),
            positions, ``"theta_"`` (the variance parameters) or ``"beta_"`` (the fixed
            effects); None for all.
        level:
            Confidence level, between 0 and 1.
        method:
            ``"profile"``: likelihood-profile intervals, where zeta crosses -+ z (found
            by Brent's method on zeta; an SD's lower limit is 0 and a correlation's
            limits -1 and 1 where the profile stops short of z). ``"wald"``: estimate
            -+ z SE for the fixed effects, NaN for the variance parameters (as lme4).
            ``"boot"``: parametric bootstrap intervals from ``nsim`` replicates
            (:func:`multilevel.bootstrap`), of type ``boot_type`` (``"perc"``,
            ``"basic"`` or ``"norm"``), simulated from ``seed``.

        Returns
        -------
        pandas.DataFrame
            Columns ``lower`` and ``upper``, indexed by parameter; ``attrs`` hold
            ``level`` and ``method``.

        Examples
        --------
        >>> import multilevel
        >>> m = multilevel.fit("Reaction ~ Days + (Days | Subject)", multilevel.load_dataset("sleepstudy"))
        >>> ci = m.confint()
        >>> list(ci.index)[:3]
        ['sd_(Intercept)|Subject', 'cor_Days.(Intercept)|Subject', 'sd_Days|Subject']
        >>> round(float(ci.loc["Days", "lower"]), 3)
        7.359
        """
        from ..linalg.threads import blas_threads
        from .profile import boot_table, check_method, confint

        if check_method(method) == "boot":
            from .bootstrap import parametric_bootstrap

            boot = parametric_bootstrap(self, nsim, seed=seed)
            return boot_table(boot.confint(level, boot_type), self._parameter_names, self._n_var, parm, level)
        with blas_threads(self._dense_size):
            return confint(
                self._profiler,
                self._parameter_names,
                self._n_var,
                self.fixef.to_numpy(),
                self.fixef_se.to_numpy(),
                parm=parm,
                level=level,
                method=method,
            )
