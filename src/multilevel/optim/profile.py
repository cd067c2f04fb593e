"""Likelihood profiles: zeta traces and their crossings, for any model.

A *profiler* knows a model's parameters (names, estimates, bounds, the minimum
deviance) and, for parameter ``i`` held at a value, minimizes the deviance over
the others. :class:`ZetaTrace` turns that into lme4's signed square root

    zeta(v) = sign(v - v_hat) sqrt(deviance(v) - deviance_min),

caching every point (each inner minimization starts from the optimum of the
nearest point found between it and the estimate, extrapolated along the trace, so
a trace costs a few evaluations per point and follows one branch of optima outward), and finds where
zeta crosses a level by bracketing along the trace with secant steps and then
Brent's method (:func:`brent`, scipy's ``brentq`` algorithm) on zeta itself; a parameter whose
profile does not reach the level before its bound (an SD before 0, a
correlation before +-1) gets the bound. lme4 interpolates a spline through a
grid of profile points instead; roots of zeta are exact to the tolerance.

Examples
--------
>>> import numpy as np
>>> class Quadratic:  # deviance (v - 1)^2 / 0.25 + w^2, v profiled over w
...     names, estimate = ("v", "w"), np.array([1.0, 0.0])
...     lower, upper, base = np.array([-np.inf, -np.inf]), np.array([np.inf, np.inf]), 0.0
...     def start(self, i): return np.zeros(1)
...     def step(self, i): return 0.5
...     def minimize(self, i, value, start): return (value - 1.0) ** 2 / 0.25, np.zeros(1)
...     def point(self, i, value, rest): return np.array([value, 0.0])
>>> round(ZetaTrace(Quadratic(), 0).crossing(+1, 1.96), 6)
1.98
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Protocol

import numpy as np

from ..errors import warn

#: secant steps (and bound probes) allowed while bracketing one crossing
MAX_BRACKET_STEPS = 40
#: the most a bracketing step may grow over the last one (lme4's maxmult)
MAX_STEP_GROWTH = 10.0
#: relative overshoot of a secant step, so that it usually brackets the crossing
OVERSHOOT = 1.02
#: a crossing is where zeta is this close to its level (zeta itself is good to ~1e-9)
ZETA_TOL = 1e-8
#: a deviance this far below the minimum (absolute) means the fit was not at its optimum
BETTER_TOL = 1e-6


EPS = float(np.finfo(float).eps)


def brent(
    f: Callable[[float], float], a: float, b: float, *, xtol: float, ftol: float = 0.0, maxiter: int = 200
) -> float:
    """A root of ``f`` in [a, b] (``f(a)``, ``f(b)`` of opposite signs) by Brent's method
    (Brent 1973, ``zeroin``; the algorithm of ``scipy.optimize.brentq``): inverse quadratic
    interpolation or secant steps, bisection where they would not shrink the bracket fast
    enough. Stops when the bracket is below ``xtol`` (plus 2 eps |x|) or ``|f| <= ftol``.

    Written out here rather than imported: ``scipy.optimize`` takes ~0.1 s to import,
    more than a profile of a small model.

    Examples
    --------
    >>> round(brent(lambda x: x**3 - 2 * x - 5, 2.0, 3.0, xtol=1e-12), 9)
    2.094551482
    """
    fa, fb = f(a), f(b)
    if fa * fb > 0:
        raise ValueError(f"f(a) and f(b) must have opposite signs, got {fa:g} and {fb:g}")
    c, fc, d, e = a, fa, b - a, b - a
    for _ in range(maxiter):
        if fb * fc > 0:
            c, fc, d, e = a, fa, b - a, b - a
        if abs(fc) < abs(fb):
            a, b, c, fa, fb, fc = b, c, b, fb, fc, fb
        tol = 2.0 * EPS * abs(b) + 0.5 * xtol
        m = 0.5 * (c - b)
        if abs(m) <= tol or abs(fb) <= ftol:
            return b
        if abs(e) >= tol and abs(fa) > abs(fb):
            s = fb / fa
            if a == c:  # secant
                p, q = 2.0 * m * s, 1.0 - s
            else:  # inverse quadratic interpolation
                q, r = fa / fc, fb / fc
                p = s * (2.0 * m * q * (q - r) - (b - a) * (r - 1.0))
                q = (q - 1.0) * (r - 1.0) * (s - 1.0)
            if p > 0:
                q = -q
            p = abs(p)
            if 2.0 * p < min(3.0 * m * q - abs(tol * q), abs(e * q)):
                e, d = d, p / q
            else:
                d = e = m
        else:
            d = e = m
        a, fa = b, fb
        b += d if abs(d) > tol else math.copysign(tol, m)
        fb = f(b)
    return b


class Profiler(Protocol):
    """What :class:`ZetaTrace` needs of a model (see the module docstring)."""

    names: tuple[str, ...]
    estimate: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    base: float

    def start(self, i: int) -> np.ndarray: ...

    def step(self, i: int) -> float: ...

    def minimize(self, i: int, value: float, start: np.ndarray) -> tuple[float, np.ndarray]: ...

    def point(self, i: int, value: float, rest: np.ndarray) -> np.ndarray: ...


def minimize_box(
    f: Callable[[np.ndarray], float],
    x0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    step: np.ndarray,
    *,
    ftol_abs: float = 1e-9,
    xtol_rel: float = 1e-8,
    maxeval: int = 20_000,
) -> tuple[np.ndarray, float]:
    """NLopt's BOBYQA on ``lower <= x <= upper`` (returns the best point seen and its value).

    ``ftol_abs``: the deviance is wanted to ~1e-9 absolute, which puts zeta within
    ~1e-9 of its value near the crossings of -+1.96 whatever the size of the deviance
    (measured on the reference models: 1e-8 at most).

    Examples
    --------
    >>> import numpy as np
    >>> x, f = minimize_box(lambda x: float(np.sum((x - 2.0) ** 2)), np.zeros(2),
    ...                     np.zeros(2), np.array([1.0, 5.0]), np.full(2, 0.5))
    >>> np.round(x, 6).tolist(), round(f, 6)
    ([1.0, 2.0], 1.0)
    """
    import nlopt

    x0 = np.asarray(x0, dtype=float)
    if x0.size == 0:
        return x0, float(f(x0))
    best = {"x": x0.copy(), "f": math.inf}

    def wrapped(x: np.ndarray, grad: np.ndarray) -> float:
        val = float(f(x))
        if not math.isfinite(val):
            return 1e300
        if val < best["f"]:
            best["f"], best["x"] = val, x.copy()
        return val

    opt = nlopt.opt(nlopt.LN_BOBYQA, x0.size)
    opt.set_min_objective(wrapped)
    opt.set_lower_bounds(lower)
    opt.set_upper_bounds(upper)
    opt.set_ftol_abs(ftol_abs)
    opt.set_xtol_rel(xtol_rel)
    opt.set_maxeval(maxeval)
    x0 = np.clip(x0, lower, upper)
    # steps may not leave the box: BOBYQA's first points are x0 +- step
    room = np.maximum(upper - x0, x0 - lower)
    opt.set_initial_step(np.minimum(step, np.where(np.isfinite(room), 0.5 * room, np.inf)))
    try:
        opt.optimize(x0)
    except nlopt.RoundoffLimited:
        pass
    return best["x"], best["f"]


class BoxProfiler:
    """The Profiler protocol for models profiled in the coordinates (k SDs and correlations
    in theta's order, a scale on the log scale at position k where ``has_scale``, the
    fixed effects), each point minimized by BOBYQA in a box (:func:`minimize_box`).

    A subclass sets ``estimate``, ``k``, ``has_scale``, ``is_sd`` (k,), ``n_levels`` (k,),
    ``n_obs``, ``se`` (of the fixed effects), ``_x_hat``, ``_xlo``, ``_xhi``, ``_typical``
    (coordinates) and defines ``deviance(x)``; ``step_size`` scales BOBYQA's first steps.
    """

    estimate: np.ndarray
    k: int
    has_scale: bool
    is_sd: np.ndarray
    n_levels: np.ndarray
    n_obs: int
    se: np.ndarray
    _x_hat: np.ndarray
    _xlo: np.ndarray
    _xhi: np.ndarray
    _typical: np.ndarray
    step_size = 0.02

    def deviance(self, x: np.ndarray) -> float:  # pragma: no cover - abstract
        raise NotImplementedError

    def _coordinate(self, i: int, value: float) -> float:
        """Parameter i's value in the optimizer's coordinates."""
        return math.log(value) if self.has_scale and i == self.k else value

    def start(self, i: int) -> np.ndarray:
        return np.delete(self._x_hat, i)

    def step(self, i: int) -> float:
        """About one standard error of parameter i (the first step of its profile)."""
        est = self.estimate[i]
        if i < self.k:
            if self.is_sd[i]:
                return est / math.sqrt(2.0 * self.n_levels[i]) if est > 0 else 0.1
            return max(1.0 - est * est, 0.01) / math.sqrt(self.n_levels[i])
        if self.has_scale and i == self.k:
            return est / math.sqrt(2.0 * self.n_obs)
        return float(self.se[i - self.k - int(self.has_scale)])

    def minimize(self, i: int, value: float, start: np.ndarray) -> tuple[float, np.ndarray]:
        c = self._coordinate(i, value)

        def f(rest: np.ndarray) -> float:
            return self.deviance(np.insert(rest, i, c))

        lo, hi = np.delete(self._xlo, i), np.delete(self._xhi, i)
        step = self.step_size * np.maximum(np.abs(start), 0.2 * np.delete(self._typical, i))
        x, fval = minimize_box(f, start, lo, hi, step)
        return fval, x

    def point(self, i: int, value: float, rest: np.ndarray) -> np.ndarray:
        """Every parameter at a profile point."""
        x = np.insert(rest, i, self._coordinate(i, value))
        if self.has_scale:
            x[self.k] = math.exp(x[self.k])
        return x


class ZetaTrace:
    """The profile of one parameter: every point evaluated, and crossings of zeta levels."""

    def __init__(self, profiler: Profiler, i: int) -> None:
        self.profiler = profiler
        self.i = i
        self.estimate = float(profiler.estimate[i])
        self.lower = float(profiler.lower[i])
        self.upper = float(profiler.upper[i])
        # value -> (zeta, the other parameters at the inner optimum)
        self.points: dict[float, tuple[float, np.ndarray]] = {self.estimate: (0.0, profiler.start(i))}
        self.lowest = profiler.base  # the lowest deviance met (below base: the fit was off)

    @property
    def name(self) -> str:
        return self.profiler.names[self.i]

    def zeta(self, value: float) -> float:
        """Signed root of the deviance increase with the parameter held at ``value`` (-+inf
        where the deviance is not finite)."""
        value = float(value)
        hit = self.points.get(value)
        if hit is not None:
            return hit[0]
        # continue from the nearest point on the way out from the estimate: a point
        # further out may sit in another (boundary) optimum of the inner problem
        d = value - self.estimate
        inside = [v for v in self.points if (v - self.estimate) * d >= 0 and abs(v - self.estimate) <= abs(d)]
        inside.sort(key=lambda v: abs(v - value))
        start = self.points[inside[0]][1]
        if len(inside) > 1:
            # continuation: the inner optimum extrapolated along the trace
            (v1, v2) = inside[:2]
            start = start + (value - v1) / (v1 - v2) * (start - self.points[v2][1])
        dev, rest = self.profiler.minimize(self.i, value, start)
        if math.isnan(dev):
            dev = math.inf
        if dev < self.lowest:
            self.lowest = dev
        z = math.copysign(math.sqrt(max(dev - self.profiler.base, 0.0)), value - self.estimate)
        self.points[value] = (z, rest)
        return z

    def crossing(self, direction: int, level: float) -> float:
        """The value where zeta = ``direction * level`` on that side of the estimate; the
        bound where the profile stops short of it there, NaN where it never gets there."""
        bound = self.upper if direction > 0 else self.lower
        target = direction * level
        if self.estimate == bound:
            return bound
        # the points already known on this side, outward from the estimate
        chain = [(self.estimate, 0.0)]
        side = [v for v in self.points if (v - self.estimate) * direction > 0]
        for v in sorted(side, key=lambda v: abs(v - self.estimate)):
            z = self.points[v][0]
            if direction * z >= level:
                return self._brent(chain[-1][0], v, target)
            chain.append((v, z))
        if len(chain) == 1:
            v = self.estimate + direction * self.profiler.step(self.i)
        else:
            v = self._next(chain[-2], chain[-1], target, direction)
        for _ in range(MAX_BRACKET_STEPS):
            if (v - bound) * direction >= 0:
                v = bound
            z = self.zeta(v)
            if not math.isfinite(z):  # no finite deviance there: step back in
                v = 0.5 * (chain[-1][0] + v)
                continue
            if direction * z >= level:
                return self._brent(chain[-1][0], v, target)
            if v == bound:
                return bound
            chain.append((v, z))
            v = self._next(chain[-2], chain[-1], target, direction)
        warn(
            f"the profile of {self.name} does not reach zeta = {target:g} (the interval is open on "
            "that side)",
            RuntimeWarning,
        )
        return math.nan

    @staticmethod
    def _next(prev: tuple[float, float], last: tuple[float, float], target: float, direction: int) -> float:
        """A secant step from the last two points toward the target (a little past it),
        at most ``MAX_STEP_GROWTH`` times the last step; where zeta is flat or turns back,
        twice the last step."""
        (v0, z0), (v1, z1) = prev, last
        slope = (z1 - z0) / (v1 - v0)
        last_step = abs(v1 - v0)
        if slope * direction > 0:
            step = min(abs(OVERSHOOT * (target - z1) / slope), MAX_STEP_GROWTH * last_step)
        else:
            step = 2.0 * last_step
        return v1 + direction * step

    def _brent(self, a: float, b: float, target: float) -> float:
        """Brent's method on zeta - target in [a, b], stopped as soon as zeta is within
        ``ZETA_TOL`` of the target (the last steps to a tiny bracket would buy nothing)."""
        width = abs(b - self.estimate) + abs(a - self.estimate)
        xtol = max(1e-10 * width, 1e-14 * max(abs(a), abs(b), 1.0))
        return float(brent(lambda v: self.zeta(v) - target, a, b, xtol=xtol, ftol=ZETA_TOL))

    def fill(self, zmax: float, per_side: int) -> list[float]:
        """Points out to |zeta| = ``zmax`` (or the bound) on both sides, ``per_side`` of them
        evenly spaced in the parameter on each, evaluated outward from the estimate; returns
        their values with the estimate's, increasing."""
        grid = [self.estimate]
        for direction in (-1, 1):
            end = self.crossing(direction, zmax)
            if not math.isfinite(end) or end == self.estimate:
                continue
            for t in np.linspace(0.0, 1.0, per_side + 1)[1:]:
                v = float(self.estimate + t * (end - self.estimate))
                self.zeta(v)
                grid.append(v)
        return sorted(grid)

    def table(self, values: list[float] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Values, zetas and every parameter at the points ``values`` (default: all
        evaluated), in increasing value."""
        vals = np.array(sorted(self.points if values is None else values))
        zs = np.array([self.zeta(v) for v in vals])
        full = np.array([self.profiler.point(self.i, v, self.points[v][1]) for v in vals])
        return vals, zs, full
