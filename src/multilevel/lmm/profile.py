"""Likelihood profiles of a linear mixed model (lme4's ``profile`` of an ``lmer`` fit).

As lme4 (its ``devfun2`` refits a REML fit by ML), every parameter is profiled
on the maximum-likelihood deviance, REML fits included: the SDs and
correlations of the random effects, the residual SD ``sigma`` and the fixed
effects, each held at a value while the deviance is minimized over the others.
The inner problems keep what is exact in closed form profiled:

* an SD: the other SDs and correlations and sigma by BOBYQA, theta built from them;
* a correlation: the relative SDs and the other correlations, sigma profiled;
* sigma: theta, with beta profiled (:meth:`LmmObjective.deviance_at`);
* a fixed effect ``beta_j = b``: theta, with sigma and the other fixed effects
  profiled, since at any theta the penalized residual sum of squares is
  ``r2 + |c_X - L_XX' beta|^2`` (the bordered factor of
  :mod:`multilevel.lmm.objective`), whose minimum over the other coefficients is
  ``r2 + (b - beta_hat_j)^2 / C_jj`` with ``C = (L_XX L_XX')^{-1}``.

Each evaluation costs one blocked factorization, whatever the number of rows.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.linalg import lapack

from ..model.varpar import VarParams
from ..optim.optimize import bobyqa
from ..optim.profile import minimize_box
from .objective import Factor, LmmObjective
from .solution import solve

__all__ = ["LmmProfiler", "parameter_names"]

#: first steps of the inner optimizations, relative to the start (a neighbouring optimum)
STEP = 0.02


def parameter_names(obj: LmmObjective) -> tuple[str, ...]:
    """The parameters in lme4's order: SDs and correlations, ``sigma`` (unless residual SEs
    are known), then the fixed effects.

    >>> import multilevel
    >>> m = multilevel.fit("Yield ~ 1 + (1 | Batch)", multilevel.load_dataset("Dyestuff"))
    >>> parameter_names(m.objective)
    ('sd_(Intercept)|Batch', 'sigma', 'Intercept')
    """
    sigma = ["sigma"] if obj.sigma_fixed is None else []
    return (*VarParams.of(obj.spec).names, *sigma, *obj.spec.fixed_names)


def _ml_optimum(obj: LmmObjective, theta: np.ndarray) -> tuple[np.ndarray, float]:
    """The ML optimum from a REML one (lme4's ``refitML``), by BOBYQA from its theta."""
    lower = obj.spec.theta_map.lower_bounds

    def f(t: np.ndarray) -> float:
        try:
            return float(obj.criterion(obj.factor(t), reml=False))
        except np.linalg.LinAlgError:
            return math.inf

    step = 0.05 * np.maximum(np.abs(theta), 0.1)
    t, fval, _, _, _ = bobyqa(f, theta, lower, initial_step=step, ftol_rel=1e-14)
    t = np.where(np.isfinite(lower), np.maximum(t, lower), t)
    # a boundary optimum the optimizer stopped short of
    snap = np.where(np.isfinite(lower) & (t - lower < 1e-4), lower, t)
    if not np.array_equal(snap, t) and f(snap) <= fval:
        t, fval = snap, f(snap)
    return t, fval


class LmmProfiler:
    """The ML deviance of a linear mixed model with one parameter held fixed.

    Parameters, in lme4's order: the random-effect SDs and correlations (theta's
    order), ``sigma`` (unless residual SEs are known) and the fixed effects.
    Implements :class:`multilevel.optim.profile.Profiler`.

    Examples
    --------
    >>> import multilevel
    >>> from multilevel.optim.profile import ZetaTrace
    >>> m = multilevel.fit("Yield ~ 1 + (1 | Batch)", multilevel.load_dataset("Dyestuff"))
    >>> prof = LmmProfiler(m.objective, m.theta, m.fixef_se.to_numpy())
    >>> prof.names
    ('sd_(Intercept)|Batch', 'sigma', 'Intercept')
    >>> round(ZetaTrace(prof, 1).crossing(+1, 1.959964), 3)
    67.658
    """

    def __init__(self, obj: LmmObjective, theta: np.ndarray, se: np.ndarray) -> None:
        self.obj = obj
        self.vp = VarParams.of(obj.spec)
        self.k = self.vp.size
        self.p = obj.p
        self.has_sigma = obj.sigma_fixed is None
        self.tlower = obj.spec.theta_map.lower_bounds
        theta = np.asarray(theta, dtype=float)
        if obj.reml:
            self.theta, self.base = _ml_optimum(obj, theta)
        else:
            self.theta, self.base = theta, float(obj.criterion(obj.factor(theta), reml=False))
        f = obj.factor(self.theta)
        self.sigma = self._sigma_ml(f.r2)
        beta = solve(obj, f).beta
        v = self.vp.from_theta(self.theta, self.sigma)
        self.se = np.asarray(se, dtype=float)
        s = [self.sigma] if self.has_sigma else []
        self.estimate = np.concatenate([v, s, beta])
        self.names = parameter_names(obj)
        inf = np.full(self.p, np.inf)
        self.lower = np.concatenate([self.vp.lower, [0.0] * len(s), -inf])
        self.upper = np.concatenate([self.vp.upper, [np.inf] * len(s), inf])
        self.n_levels = np.array([obj.spec.groupings[b].n_levels for b in obj.spec.theta_map.block])

    # ---- pieces ------------------------------------------------------
    def _sigma_ml(self, r2: float) -> float:
        return math.sqrt(r2 / self.obj.n) if self.has_sigma else float(self.obj.sigma_fixed or 1.0)

    def _factor(self, theta: np.ndarray | None) -> Factor | None:
        if theta is None:
            return None
        try:
            return self.obj.factor(theta)
        except np.linalg.LinAlgError:
            return None

    def _kind(self, i: int) -> str:
        if i < self.k:
            return "sd" if self.vp.is_sd[i] else "cor"
        return "sigma" if self.has_sigma and i == self.k else "beta"

    def _fixed_part(self, f: Factor, j: int) -> tuple[float, np.ndarray, np.ndarray]:
        """beta_hat, column j of (L_XX L_XX')^{-1} and its diagonal element at a factor."""
        mz, p = self.obj.layout.mz, self.p
        # the factor's upper triangle is not kept clean: read the lower one only
        L = np.tril(np.asarray(f.LS[mz : mz + p, mz : mz + p]))
        c = np.asarray(f.LS[-1, mz : mz + p])
        Linv, info = lapack.dtrtri(L, lower=1)
        if info != 0:
            raise np.linalg.LinAlgError("singular fixed-effect factor")
        Linv = np.tril(Linv)
        beta = Linv.T @ c
        Cj = Linv.T @ Linv[:, j]
        return float(Cj[j]), beta, Cj

    def _beta_deviance(self, f: Factor, j: int, b: float) -> float:
        """ML deviance with beta_j = b, the other coefficients and sigma profiled."""
        Cjj, beta, _ = self._fixed_part(f, j)
        r2j = f.r2 + (b - beta[j]) ** 2 / Cjj
        s = self._sigma_ml(r2j)
        return float(self.obj.deviance_at(f, s, reml=False)) + (r2j - f.r2) / (s * s)

    # ---- the Profiler protocol -----------------------------------------
    def start(self, i: int) -> np.ndarray:
        kind = self._kind(i)
        v = self.estimate[: self.k]
        if kind == "sd":
            return np.concatenate([np.delete(v, i), [self.sigma] if self.has_sigma else []])
        if kind == "cor":
            return np.delete(np.where(self.vp.is_sd, v / self.sigma, v), i)
        return self.theta.copy()

    def step(self, i: int) -> float:
        """About one standard error of parameter i (the first step of its profile)."""
        kind, est = self._kind(i), self.estimate[i]
        if kind == "sd":
            return est / math.sqrt(2.0 * self.n_levels[i]) if est > 0 else 0.1 * self.sigma
        if kind == "cor":
            return max(1.0 - est * est, 0.01) / math.sqrt(self.n_levels[i])
        if kind == "sigma":
            return est / math.sqrt(2.0 * self.obj.n)
        return float(self.se[i - self.k - int(self.has_sigma)])

    def _bounds(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        kind = self._kind(i)
        if kind in ("sd", "cor"):
            lo, hi = np.delete(self.vp.lower, i), np.delete(self.vp.upper, i)
            if kind == "sd" and self.has_sigma:
                lo, hi = np.append(lo, 1e-10 * self.sigma), np.append(hi, np.inf)
            return lo, hi
        return self.tlower, np.full(self.k, np.inf)

    def _objective(self, i: int, value: float) -> Any:
        kind = self._kind(i)
        obj, vp = self.obj, self.vp

        def crit(f: Factor | None, g: Any) -> float:
            return math.inf if f is None else float(g(f))

        if kind == "sd":

            def sd_dev(x: np.ndarray) -> float:
                s = float(x[-1]) if self.has_sigma else 1.0
                rest = x[:-1] if self.has_sigma else x
                f = self._factor(vp.to_theta(np.insert(rest, i, value), s))
                return crit(f, lambda f: obj.deviance_at(f, s, reml=False))

            return sd_dev
        if kind == "cor":
            return lambda x: crit(
                self._factor(vp.to_theta(np.insert(x, i, value), 1.0)), lambda f: obj.criterion(f, reml=False)
            )
        if kind == "sigma":
            return lambda t: crit(self._factor(t), lambda f: obj.deviance_at(f, value, reml=False))
        j = i - self.k - int(self.has_sigma)
        return lambda t: crit(self._factor(t), lambda f: self._beta_deviance(f, j, value))

    def _typical(self, i: int) -> np.ndarray:
        """Typical sizes of the inner coordinates (their first steps where a start is near 0)."""
        kind = self._kind(i)
        if kind == "sd":
            sizes = np.delete(np.where(self.vp.is_sd, self.sigma, 1.0), i)
            return np.append(sizes, self.sigma) if self.has_sigma else sizes
        return np.ones(self.k - int(kind == "cor"))

    def minimize(self, i: int, value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        lo, hi = self._bounds(i)
        step = STEP * np.maximum(np.abs(start), 0.1 * self._typical(i))
        x, fval = minimize_box(self._objective(i, value), start, lo, hi, step)
        return fval, x

    def _theta_at(self, i: int, value: float, rest: np.ndarray) -> tuple[np.ndarray, float | None]:
        """theta at a profile point, and sigma where the point fixes it."""
        kind = self._kind(i)
        if kind == "sd":
            s = float(rest[-1]) if self.has_sigma else 1.0
            theta = self.vp.to_theta(np.insert(rest[:-1] if self.has_sigma else rest, i, value), s)
        elif kind == "cor":
            theta, s = self.vp.to_theta(np.insert(rest, i, value), 1.0), None
        else:
            theta, s = rest, (value if kind == "sigma" else None)
        if theta is None:
            raise np.linalg.LinAlgError("correlations that are not positive semi-definite")
        return theta, s

    def point(self, i: int, value: float, rest: np.ndarray) -> np.ndarray:
        """Every parameter at a profile point (lme4's profile table rows)."""
        theta, s = self._theta_at(i, value, rest)
        f = self.obj.factor(theta)
        if self._kind(i) == "beta":
            j = i - self.k - int(self.has_sigma)
            Cjj, bh, Cj = self._fixed_part(f, j)
            beta = bh + Cj * (value - bh[j]) / Cjj
            s = self._sigma_ml(f.r2 + (value - bh[j]) ** 2 / Cjj)
        else:
            beta = solve(self.obj, f).beta
        if s is None:
            s = self._sigma_ml(f.r2)
        return np.concatenate([self.vp.from_theta(theta, s), [s] if self.has_sigma else [], beta])
