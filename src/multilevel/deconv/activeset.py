"""Active-set Newton on the support with a KKT check over the whole grid.

Each round (Wang's constrained Newton method for mixing distributions):

1. D(f) over the whole grid; stop when max D <= 1 + tol, which bounds the
   log-likelihood's distance below the grid optimum by W * (max D - 1).
2. The working set: the support of f plus every local maximum of D above 1.
3. The Newton model of the log-likelihood on the working set, maximized over
   the simplex: the least-squares problem min ||B x - 2 sqrt(v)||, x >= 0,
   sum x = 1, with B = diag(sqrt(v) / g) At (solved by NNLS on the R factor of
   B with a heavily weighted sum row); zeros of x drop atoms exactly.
4. An exact line search from f toward x (on the derivative).
"""

from __future__ import annotations

import numpy as np
from scipy import linalg, optimize

from .problem import Problem

_SUM_ROW_WEIGHT = 1e4


def _local_maxima(D: np.ndarray) -> np.ndarray:
    left = np.concatenate(([-np.inf], D[:-1]))
    right = np.concatenate((D[1:], [-np.inf]))
    return (D >= left) & (D >= right)


def _newton_target(problem: Problem, f: np.ndarray, g: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The maximizer over the simplex (on ``cols``) of the quadratic model at ``f``."""
    sv = np.sqrt(problem.v)
    B = problem.At[:, cols] * (sv / g)[:, None]
    q, r = linalg.qr(B, mode="economic", check_finite=False)
    rhs = q.T @ (2.0 * sv)
    k = cols.size
    A_aug = np.vstack([r, np.full((1, k), _SUM_ROW_WEIGHT)])
    b_aug = np.concatenate([rhs, [_SUM_ROW_WEIGHT]])
    x, _ = optimize.nnls(A_aug, b_aug, maxiter=50 * k)
    x = _exact_on_positive(r, rhs, x)
    full = np.zeros_like(f)
    if x.sum() > 0:
        full[cols] = x / x.sum()
    return full


def _exact_on_positive(r: np.ndarray, rhs: np.ndarray, x: np.ndarray) -> np.ndarray:
    """The model's maximizer with sum x = 1 held exactly on the positive set of the NNLS answer.

    The weighted sum row leaves an error of order 1 / weight^2 in the sum; near
    the optimum that error would stall the line search, so the equality-constrained
    least-squares problem is solved on the positive set when its answer stays positive.
    """
    pos = np.flatnonzero(x > 0)
    if pos.size == 0:
        return x
    rp = r[:, pos]
    kkt = np.zeros((pos.size + 1, pos.size + 1))
    kkt[:-1, :-1] = rp.T @ rp
    kkt[:-1, -1] = kkt[-1, :-1] = 1.0
    b = np.concatenate([rp.T @ rhs, [1.0]])
    sol = linalg.lstsq(kkt, b, check_finite=False)[0][:-1]
    if np.all(sol > 0):
        out = np.zeros_like(x)
        out[pos] = sol
        return out
    return x


def _line_search(problem: Problem, f: np.ndarray, x: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, bool]:
    """The exact maximizer along f + a (x - f), a in [0, 1]; whether it moved.

    The search is on the derivative h'(a) = sum_i v_i (At d)_i / g_i(a), which
    is decreasing (h is concave) and, unlike h itself, keeps its precision next
    to the optimum, where changes of the log-likelihood fall below rounding.
    """
    d = x - f
    gd = problem.At @ d
    v = problem.v

    def slope(a: float) -> float:
        with np.errstate(divide="ignore", invalid="ignore"):
            val = float(v @ (gd / (g + a * gd)))
        return val if np.isfinite(val) else -np.inf

    if not slope(0.0) > 0:
        return f, False
    lo, hi = 0.0, 1.0
    if slope(1.0) < 0:
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if slope(mid) > 0:
                lo = mid
            else:
                hi = mid
        a = lo
    else:
        a = 1.0
    if a == 0.0:
        return f, False
    out = f + a * d
    out[out < 0] = 0.0
    return out, True


def polish(
    problem: Problem, f: np.ndarray, *, tol: float = 1e-10, max_rounds: int = 500
) -> tuple[np.ndarray, int, bool]:
    """Weights at the grid optimum (exact zeros off the support), rounds, converged."""
    # an interior-point answer is positive everywhere: start from its clear atoms only
    # (an atom dropped here comes back as a local maximum of D above 1)
    f = np.where(f > 1e-6 * f.max(), f, 0.0)
    f = f / f.sum()
    for rounds in range(1, max_rounds + 1):
        g = problem.marginal(f)
        D = problem.At.T @ (problem.v / g)
        if D.max() <= 1.0 + tol:
            return f, rounds, True
        work = np.flatnonzero((f > 0) | (_local_maxima(D) & (D > 1.0)))
        f_new, moved = _line_search(problem, f, _newton_target(problem, f, g, work), g)
        if not moved:
            # no ascent along the Newton direction: step toward the steepest vertex
            vertex = np.zeros_like(f)
            vertex[int(np.argmax(D))] = 1.0
            f_new, moved = _line_search(problem, f, vertex, g)
            if not moved:
                return f, rounds, False
        f = f_new
    D = problem.gradient(f)
    return f, max_rounds, bool(D.max() <= 1.0 + tol)
