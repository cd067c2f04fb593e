"""Likelihood profiles of a GLMM (lme4's ``profile`` of a ``glmer`` fit).

The deviance is the fit's own: Laplace (``nagq = 1``) or adaptive quadrature.
Every parameter (the random-effect SDs and correlations on the random-effect
scale, the dispersion where the family has one, the fixed effects) is held at a
value while the deviance is minimized over all the others by BOBYQA, PIRLS
finding the conditional modes at every point from the last ones. lme4 does the
same for families without a dispersion and refuses the others; here a scale
dispersion is profiled as ``sigma`` (lme4's ``sigma()``, the square root of the
dispersion) and a negative binomial's as ``shape``, on the log scale inside.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ..errors import ConvergenceWarning, ModelError
from ..family import Family
from ..family.base import Dispersion
from ..model.spec import ModelSpec
from ..model.varpar import VarParams
from ..optim.profile import BoxProfiler
from .agq import agq_deviance
from .pirls import GlmmProblem

__all__ = ["GlmmProfiler", "parameter_names"]

#: first steps of the inner optimizations, relative to the start (a neighbouring optimum)


def parameter_names(spec: ModelSpec, family: Family) -> tuple[str, ...]:
    """The parameters in lme4's order: SDs and correlations, ``sigma`` or ``shape`` where
    the family estimates a dispersion, then the fixed effects.

    >>> import multilevel
    >>> g = multilevel.fit("cbind(incidence, size - incidence) ~ 1 + (1 | herd)",
    ...                    multilevel.load_dataset("cbpp"), family="binomial")
    >>> parameter_names(g.spec, g.family)
    ('sd_(Intercept)|herd', 'Intercept')
    """
    disp = {Dispersion.SCALE: ["sigma"], Dispersion.SHAPE: ["shape"]}.get(family.dispersion, [])
    return (*VarParams.of(spec).names, *disp, *spec.fixed_names)


class GlmmProfiler(BoxProfiler):
    """The deviance of a GLMM with one parameter held fixed.

    Parameters in lme4's order: SDs and correlations (theta's order), ``sigma`` or
    ``shape`` where the family estimates a dispersion, then the fixed effects.
    ``se``: standard errors of the fixed effects (the first steps of their
    profiles). Implements :class:`multilevel.optim.profile.Profiler`.

    Examples
    --------
    >>> import multilevel
    >>> from multilevel.optim.profile import ZetaTrace
    >>> g = multilevel.fit("cbind(incidence, size - incidence) ~ period + (1 | herd)",
    ...                    multilevel.load_dataset("cbpp"), family="binomial")
    >>> prof = GlmmProfiler(g.problem, g.nagq, g.estimate.theta, g.estimate.beta, g.estimate.disp,
    ...                     g.deviance, g.fixef_se.to_numpy(), g.estimate.pirls.u)
    >>> prof.names
    ('sd_(Intercept)|herd', 'Intercept', 'period[T.2]', 'period[T.3]', 'period[T.4]')
    >>> round(ZetaTrace(prof, 0).crossing(+1, 1.959964), 2)
    1.1
    """

    def __init__(
        self,
        prob: GlmmProblem,
        nagq: int,
        theta: np.ndarray,
        beta: np.ndarray,
        disp: float,
        deviance: float,
        se: np.ndarray,
        u0: list[np.ndarray],
    ) -> None:
        if prob.lme4_criterion:
            raise ModelError(
                "profiles are not available for lme4's glmer criterion (laplace='expected' with a "
                "dispersion family): it has no dispersion parameter to profile; refit with "
                "laplace='observed' for a profile of the Laplace likelihood"
            )
        self.prob, self.nagq = prob, nagq
        fam = prob.family
        self.vp = VarParams.of(prob.spec)
        self.k, self.p = self.vp.size, beta.size
        self.kind_disp = fam.dispersion
        self.has_disp = self.has_scale = fam.has_dispersion
        self.is_sd, self.n_obs = self.vp.is_sd, prob.n
        self.u = u0
        dv = [self._disp_value(disp)] if self.has_disp else []
        self.estimate = np.concatenate([self.vp.from_theta(theta, 1.0), dv, beta])
        self.names = parameter_names(prob.spec, fam)
        nd, inf = len(dv), np.full(beta.size, np.inf)
        self.lower = np.concatenate([self.vp.lower, [0.0] * nd, -inf])
        self.upper = np.concatenate([self.vp.upper, [np.inf] * nd, inf])
        self.base = float(deviance)
        self.se = np.asarray(se, dtype=float)
        self.n_levels = np.array([prob.spec.groupings[b].n_levels for b in prob.spec.theta_map.block])
        # the optimizer's coordinates: the SDs and correlations, log of the dispersion, beta
        self._x_hat = np.concatenate([self.estimate[: self.k], np.log(dv), beta])
        self._typical = np.concatenate([np.full(self.k, 0.5), np.ones(nd), np.maximum(self.se, 1e-3)])
        self._xlo = np.concatenate([self.vp.lower, [-np.inf] * nd, -inf])
        self._xhi = np.concatenate([self.vp.upper, [np.inf] * nd, inf])

    # ---- the dispersion on its reported scale ---------------------------
    def _disp_value(self, disp: float) -> float:
        return math.sqrt(disp) if self.kind_disp is Dispersion.SCALE else disp

    def _disp_from(self, value: float) -> float:
        return value * value if self.kind_disp is Dispersion.SCALE else value

    # ---- the deviance -----------------------------------------------------
    def deviance(self, x: np.ndarray) -> float:
        """The fit's deviance at x = (SDs and correlations, log dispersion, beta)."""
        k, nd = self.k, int(self.has_disp)
        theta = self.vp.to_theta(x[:k], 1.0)
        if theta is None:
            return math.inf
        beta = x[k + nd :]
        disp = self._disp_from(math.exp(x[k])) if nd else 1.0
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                r = self.prob.pirls(theta, beta, disp, u0=self.u)
            dev = r.laplace_deviance
            if self.nagq > 1 and math.isfinite(dev):
                dev = agq_deviance(self.prob, r, theta, beta, disp, self.nagq)
        except (np.linalg.LinAlgError, FloatingPointError):
            return math.inf
        if math.isfinite(dev):
            self.u = r.u
        return float(dev)
