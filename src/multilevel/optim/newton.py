"""Bound-constrained Newton minimization of many problems at once, on finite differences.

Each problem ``r`` minimizes a smooth function ``f(x, r)`` of a few variables
over ``x >= lower``. All problems move together: one call of the batched
function evaluates the finite-difference stencils (gradient and Hessian) of every
problem still running, another the trial points of their line searches, so the
cost per iteration is a few array operations whatever the number of problems.

A step: the gradient ``g`` and Hessian ``H`` by central differences
(``1 + 2k + k(k-1)/2`` points); the variables at their bound with ``g > 0``
are held; the Newton direction on the others uses ``|H|`` (eigenvalues by
absolute value, so a direction of negative curvature is still a descent
direction); a backtracking line search on the projected path (Armijo). A problem
stops when the Newton decrement ``g' |H|^-1 g`` falls below ``tol`` with the
held Hessian positive semi-definite; where it is not (a saddle, or a bound
variable at a stationary point of negative curvature) the step follows the
eigenvector of the most negative eigenvalue instead.

The functions the LMM code passes are smooth over all of R^k (the profiled
criterion is defined for negative diagonal theta too), so the stencils may
cross the bounds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

BatchFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class NewtonResult:
    """Per problem: the solution ``x`` (R, k), ``fval``, Newton iterations, whether it
    converged, and the (R, k, k) Hessian at ``x`` from the last stencil."""

    x: np.ndarray
    fval: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    hessian: np.ndarray
    evaluations: int


def stencil(x: np.ndarray, h: np.ndarray, central: bool = False) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Points (R, P, k) around every x: +-h_i e_i, then per pair i < j the point
    h_i e_i + h_j e_j, or with ``central`` the four points (+-h_i, +-h_j) (a cross
    derivative exact to second order rather than first)."""
    k = x.shape[1]
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    signs = ((1, 1), (1, -1), (-1, 1), (-1, -1)) if central else ((1, 1),)
    P = 2 * k + len(signs) * len(pairs)
    pts = np.repeat(x[:, None, :], P, axis=1)
    ar = np.arange(k)
    pts[:, ar, ar] += h
    pts[:, k + ar, ar] -= h
    n = 2 * k
    for i, j in pairs:
        for si, sj in signs:
            pts[:, n, i] += si * h[:, i]
            pts[:, n, j] += sj * h[:, j]
            n += 1
    return pts, pairs


def cross_terms(
    vals: np.ndarray, fp: np.ndarray, f0: np.ndarray, h: np.ndarray, pairs: list, central: bool
) -> list:
    """Second cross derivatives from :func:`stencil`'s values (leading axis: problems)."""
    k = h.shape[1]
    out = []
    for n, (i, j) in enumerate(pairs):
        hij = (h[:, i] * h[:, j]).reshape((-1,) + (1,) * (vals.ndim - 2))
        if central:
            a = vals[:, 2 * k + 4 * n : 2 * k + 4 * n + 4]
            out.append((a[:, 0] - a[:, 1] - a[:, 2] + a[:, 3]) / (4.0 * hij))
        else:
            out.append((vals[:, 2 * k + n] - fp[:, i] - fp[:, j] + f0) / hij)
    return out


def derivatives(
    f: BatchFunction, x: np.ndarray, fx: np.ndarray, which: np.ndarray, h: np.ndarray
) -> tuple[np.ndarray, np.ndarray, int]:
    """Gradient (R, k) and Hessian (R, k, k) of every problem by central differences;
    the gradient from steps h and h/2 combined by Richardson's extrapolation (error
    of order h^4: the optimum is found to the precision of f, not of the step)."""
    R, k = x.shape
    pts, pairs = stencil(x, h)
    half = np.repeat(x[:, None, :], 2 * k, axis=1)
    ar = np.arange(k)
    half[:, ar, ar] += h / 2
    half[:, k + ar, ar] -= h / 2
    allpts = np.concatenate([pts, half], axis=1)
    P = allpts.shape[1]
    vals = f(allpts.reshape(R * P, k), np.repeat(which, P)).reshape(R, P)
    with np.errstate(invalid="ignore", over="ignore"):
        return _from_values(vals, fx, h, pairs, k)


def _from_values(
    vals: np.ndarray, fx: np.ndarray, h: np.ndarray, pairs: list, k: int
) -> tuple[np.ndarray, np.ndarray, int]:
    R, P = vals.shape
    ar = np.arange(k)
    fp, fm = vals[:, :k], vals[:, k : 2 * k]
    hp, hm = vals[:, -2 * k : -k], vals[:, -k:]
    g = (4.0 * (hp - hm) / h - (fp - fm) / (2.0 * h)) / 3.0
    H = np.empty((R, k, k))
    H[:, ar, ar] = (fp - 2.0 * fx[:, None] + fm) / (h * h)
    for (i, j), v in zip(pairs, cross_terms(vals, fp, fx, h, pairs, central=False)):
        H[:, i, j] = H[:, j, i] = v
    return g, H, R * P


def _directions(g: np.ndarray, H: np.ndarray, held: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Newton directions on |H| over the free variables, their decrements, and the
    direction of most negative curvature (zero where H is positive semi-definite)."""
    k = g.shape[1]
    gf = np.where(held, 0.0, g)
    Hf = np.where(held[:, :, None] | held[:, None, :], 0.0, H)
    ar = np.arange(k)
    Hf[:, ar, ar] = np.where(held, 1.0, Hf[:, ar, ar])
    lam, V = np.linalg.eigh(np.nan_to_num(Hf))
    scale = np.max(np.abs(lam), axis=1, keepdims=True)
    floor = 1e-10 * np.maximum(scale, 1e-300)
    absl = np.maximum(np.abs(lam), floor)
    c = np.einsum("rji,rj->ri", V, gf)
    d = -np.einsum("rij,rj->ri", V, c / absl)
    dec = np.einsum("ri,ri->r", c, c / absl)
    neg = lam[:, 0] < -1e-8 * scale[:, 0]
    v = V[:, :, 0] * neg[:, None]
    return d, dec, v


def _line_search(
    f: BatchFunction,
    x: np.ndarray,
    fx: np.ndarray,
    g: np.ndarray,
    d: np.ndarray,
    which: np.ndarray,
    lower: np.ndarray,
    max_halvings: int = 40,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Backtracking along the projected path ``max(x + a d, lower)``; returns the new
    points, values, whether each found a decrease, and the evaluations."""
    R = x.shape[0]
    xn, fn = x.copy(), fx.copy()
    moved = np.zeros(R, dtype=bool)
    alpha = np.ones(R)
    todo = np.flatnonzero(np.any(d != 0, axis=1))
    evals = 0
    for _ in range(max_halvings):
        if todo.size == 0:
            break
        xt = np.maximum(x[todo] + alpha[todo, None] * d[todo], lower)
        ft = f(xt, which[todo])
        evals += todo.size
        ok = np.isfinite(ft) & (ft <= fx[todo] + 1e-4 * np.einsum("ri,ri->r", g[todo], xt - x[todo]))
        ok &= ft <= fx[todo]
        acc = todo[ok]
        xn[acc], fn[acc], moved[acc] = xt[ok], ft[ok], True
        todo = todo[~ok]
        alpha[todo] *= 0.5
    return xn, fn, moved, evals


def minimize(
    f: BatchFunction,
    x0: np.ndarray,
    lower: np.ndarray,
    *,
    which: np.ndarray | None = None,
    tol: float = 1e-10,
    max_iter: int = 100,
    rel_step: float = 1e-3,
) -> NewtonResult:
    """Minimize ``f(x, which[r])`` over ``x >= lower`` for every row r of ``x0`` (R, k).

    ``f`` takes points (N, k) and the problem of each point (N,) and returns values
    (N,), inf where undefined. ``rel_step``: finite-difference step relative to
    ``max(|x|, 0.1)``.
    """
    x = np.maximum(np.array(x0, dtype=float, ndmin=2), lower)
    R, k = x.shape
    which = np.arange(R) if which is None else np.asarray(which)
    fx = f(x, which)
    evals = R
    iters = np.zeros(R, dtype=int)
    conv = np.zeros(R, dtype=bool)
    hess = np.full((R, k, k), np.nan)
    running = np.flatnonzero(np.isfinite(fx))
    bounded = np.isfinite(lower)
    shrink = np.ones(R)
    for _ in range(max_iter):
        if running.size == 0:
            break
        xr, fr = x[running], fx[running]
        h = rel_step * np.maximum(np.abs(xr), 0.1)
        g, H, ne = derivatives(f, xr, fr, which[running], h * shrink[running, None])
        evals += ne
        # a stencil that reached an undefined point: retry with a smaller step
        bad = ~(np.all(np.isfinite(g), axis=1) & np.all(np.isfinite(H), axis=(1, 2)))
        if bad.any():
            shrink[running[bad]] *= 0.1
            g, H = np.where(bad[:, None], 0.0, g), np.where(bad[:, None, None], np.eye(k), H)
        hess[running] = H
        held = bounded & (xr <= lower) & (g > 0)
        d, dec, vneg = _directions(g, H, held)
        done = (dec < tol) & ~np.any(vneg != 0, axis=1)
        # at a stationary point of negative curvature: go down the curvature
        flat = (dec < tol) & ~done
        if flat.any():
            v, gf = vneg[flat], g[flat]
            at = bounded & (xr[flat] <= lower)
            slope = np.sum(v * gf, axis=1)
            into = np.sum(np.where(at, v, 0.0), axis=1)  # prefer moving off a bound
            sign = np.where(slope > 0, -1.0, np.where(slope < 0, 1.0, np.where(into < 0, -1.0, 1.0)))
            d[flat] = v * (sign * np.maximum(np.abs(xr[flat]), 0.1).max(axis=1))[:, None]
        xn, fn, moved, ne = _line_search(f, xr, fr, g, np.where(done[:, None], 0.0, d), which[running], lower)
        evals += ne
        iters[running] += 1
        step = np.max(np.abs(xn - xr) / np.maximum(np.abs(xr), 1.0), axis=1)
        small = moved & ~bad & (dec < 1e3 * tol)
        small &= (np.abs(fr - fn) <= 1e-14 * np.maximum(np.abs(fr), 1.0)) | (step <= 1e-10)
        x[running], fx[running] = xn, fn
        conv[running[(done & ~bad) | small]] = True
        # no decrease along a descent direction: the differences are at their precision
        stuck = ~done & ~moved & ~bad
        conv[running[stuck & (dec < 1e6 * tol)]] = True
        gave_up = bad & (shrink[running] < 1e-6)
        running = running[~((done & ~bad) | small | stuck | gave_up)]
    return NewtonResult(x=x, fval=fx, iterations=iters, converged=conv, hessian=hess, evaluations=evals)
