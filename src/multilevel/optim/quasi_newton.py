"""Bound-constrained quasi-Newton minimization of a few variables with an exact gradient.

For criteria whose gradient is exact and cheap next to the criterion's own inner
work, but whose Hessian is not at hand (the Laplace deviance of a nonlinear mixed
model: every call solves for the modes). L-BFGS-B starts from the identity, blind
to the variables' scales (fixed effects in the hundreds, relative SDs near one),
and spends its first dozen steps learning them. Here the Hessian starts from
forward differences of the gradient (one gradient per variable), so the first step
is already a Newton step; BFGS updates it after every step (Powell's damping keeps
it positive definite), and the search is a backtracking line search on the
projected path ``max(x + a d, lower)`` (Armijo's condition; each cut from the
quadratic through the values and the slope).

A variable at its lower bound whose gradient points below it is held; the others
take the Newton direction on the held-out Hessian, made positive definite by
taking its eigenvalues' absolute values (floored relative to the largest; the
differenced Hessian is made so before BFGS takes it over, which keeps it so). It
stops when the Newton decrement ``g' H^-1 g`` over the free variables is below
``tol`` (relative to ``1 + |f|``), or when a step changes neither ``f`` nor ``x``
beyond rounding.

Examples
--------
>>> import numpy as np
>>> def fg(x):
...     f = (x[0] - 3) ** 2 + 10 * (x[1] + 1) ** 2
...     return float(f), np.array([2 * (x[0] - 3), 20 * (x[1] + 1)])
>>> r = minimize_gradient(fg, np.array([0.0, 0.0]), np.array([-np.inf, 0.0]))
>>> np.round(r.x, 8).tolist(), r.converged
([3.0, 0.0], True)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

GradientFunction = Callable[[np.ndarray], tuple[float, np.ndarray]]

ARMIJO = 1e-4
MAX_HALVINGS = 30


@dataclass(frozen=True)
class GradientResult:
    """The minimizer ``x``, ``fval`` and ``grad`` there, the quasi-Newton Hessian, the
    gradient evaluations and iterations, and the verdict (``message`` says why it
    stopped)."""

    x: np.ndarray
    fval: float
    grad: np.ndarray
    hessian: np.ndarray
    evaluations: int
    iterations: int
    converged: bool
    message: str


class _Counted:
    """``fg`` with a count and a budget; a non-finite value or gradient reads as inf."""

    def __init__(self, fg: GradientFunction, budget: int) -> None:
        self.fg, self.budget, self.n = fg, budget, 0

    def __call__(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        self.n += 1
        f, g = self.fg(x)
        g = np.asarray(g, dtype=float)
        if not (math.isfinite(f) and np.all(np.isfinite(g))):
            return math.inf, g
        return float(f), g

    @property
    def spent(self) -> bool:
        return self.n >= self.budget


def difference_hessian(
    fg: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x: np.ndarray,
    g: np.ndarray,
    lower: np.ndarray,
    rel_step: float,
) -> np.ndarray:
    """Forward differences of the gradient (backward where the forward point fails and
    the bound allows), symmetrized; a column that fails both ways is left to the
    diagonal's scale."""
    k = x.size
    H = np.zeros((k, k))
    ok = np.zeros(k, dtype=bool)
    for j in range(k):
        h = rel_step * max(abs(x[j]), 0.1)
        for step in (h, -h):
            if x[j] + step < lower[j]:
                continue
            e = x.copy()
            e[j] += step
            fj, gj = fg(e)
            if math.isfinite(fj):
                H[:, j] = (gj - g) / step
                ok[j] = True
                break
    H = 0.5 * (H + H.T)
    scale = float(np.max(np.abs(np.diag(H))[ok])) if ok.any() else 1.0
    for j in map(int, np.flatnonzero(~ok)):
        H[j, :] = H[:, j] = 0.0
        H[j, j] = scale if scale > 0 else 1.0
    return H


def _positive(H: np.ndarray) -> np.ndarray:
    """``H`` with its eigenvalues replaced by their absolute values (floored relative to
    the largest): a differenced Hessian away from the optimum may be indefinite, and
    BFGS keeps positive definite only what starts so."""
    lam, V = np.linalg.eigh(0.5 * (H + H.T))
    top = float(np.max(np.abs(lam))) if lam.size else 1.0
    lam = np.maximum(np.abs(lam), 1e-10 * max(top, 1e-300))
    return (V * lam) @ V.T


def _direction(g: np.ndarray, H: np.ndarray, free: np.ndarray) -> np.ndarray:
    """The Newton direction on the free variables, on :func:`_positive` of their
    Hessian, zero on the held ones."""
    d = np.zeros_like(g)
    if free.any():
        d[free] = -np.linalg.solve(_positive(H[np.ix_(free, free)]), g[free])
    return d


def _backtrack(f: float, ft: float, slope: float) -> float:
    """The factor on the step after a rejected trial: the minimum of the quadratic
    through ``f``, the slope and ``ft``, kept within [0.1, 0.5] (halving where the
    trial is not finite)."""
    curv = ft - f - slope
    if not (math.isfinite(ft) and curv > 0):
        return 0.5
    return min(0.5, max(0.1, -slope / (2.0 * curv)))


def _bfgs(H: np.ndarray, s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The BFGS update with Powell's damping (``y`` pulled towards ``H s`` where the
    curvature ``s'y`` is too small), so that H stays positive definite."""
    Hs = H @ s
    sHs = float(s @ Hs)
    if not (sHs > 0 and math.isfinite(sHs)):
        return H
    sy = float(s @ y)
    if sy < 0.2 * sHs:
        w = 0.8 * sHs / (sHs - sy)
        y = w * y + (1.0 - w) * Hs
        sy = float(s @ y)
    return H - np.outer(Hs, Hs) / sHs + np.outer(y, y) / sy


def minimize_gradient(
    fg: GradientFunction,
    x0: np.ndarray,
    lower: np.ndarray,
    *,
    tol: float = 1e-12,
    rel_step: float = 1e-4,
    max_evals: int = 2_000,
) -> GradientResult:
    """Minimize ``f`` over ``x >= lower`` from ``x0``; ``fg(x) -> (f, gradient)``, f inf
    (or a non-finite gradient) where undefined.

    Why this is long: one loop of step, search and update, whose exits each name
    the reason; split, the state would travel in a bag of arguments.
    """
    lower = np.asarray(lower, dtype=float)
    call = _Counted(fg, max_evals)
    x = np.maximum(np.asarray(x0, dtype=float), lower)
    f, g = call(x)
    if not math.isfinite(f):
        nan = np.full((x.size, x.size), np.nan)
        return GradientResult(x, f, g, nan, call.n, 0, False, "not finite at the start")
    H = _positive(difference_hessian(call, x, g, lower, rel_step))
    fresh, it = True, 0
    while True:
        if call.spent:
            return GradientResult(x, f, g, H, call.n, it, False, "evaluation limit reached")
        free = ~((x <= lower) & (g > 0))
        d = _direction(g, H, free)
        dec = -float(g @ d)
        if dec <= tol * (1.0 + abs(f)):
            return GradientResult(x, f, g, H, call.n, it, True, "Newton decrement below tolerance")
        a, accepted = 1.0, False
        for _ in range(MAX_HALVINGS):
            xt = np.maximum(x + a * d, lower)
            if np.array_equal(xt, x):
                break
            ft, gt = call(xt)
            slope = float(g @ (xt - x))
            if math.isfinite(ft) and ft <= f + ARMIJO * slope:
                accepted = True
                break
            a *= _backtrack(f, ft, slope)
        if not accepted:
            if fresh:  # a direction the differenced Hessian trusts and no decrease: rounding
                converged = dec <= 1e-6 * (1.0 + abs(f))
                why = "no decrease at the precision of the criterion" if converged else "line search failed"
                return GradientResult(x, f, g, H, call.n, it, converged, why)
            H, fresh = _positive(difference_hessian(call, x, g, lower, rel_step)), True
            continue
        it += 1
        s, y = xt - x, gt - g
        moved = float(np.max(np.abs(s) / np.maximum(np.abs(x), 1.0)))
        stalled = abs(f - ft) <= 1e-15 * (1.0 + abs(f)) and moved < 1e-12
        H, fresh = _bfgs(H, s, y), False
        x, f, g = xt, ft, gt
        if stalled:
            return GradientResult(x, f, g, H, call.n, it, True, "the step changes nothing beyond rounding")
