"""A primal-dual interior point method for the NPMLE (Koenker and Mizera's convex program).

The homogeneous form, maximize sum_i v_i log(At f)_i - sum_j f_j over f >= 0,
has the same optimum as the simplex-constrained one (at its optimum sum f = 1),
and its KKT conditions are D(f) - 1 + s = 0, f * s = 0, f, s >= 0, where the
multipliers s = 1 - D are the slacks of Koenker and Mizera's dual constraints
At' nu <= 1 with nu = v / g. Each Newton step on the perturbed conditions
(f * s = mu) solves one (m x m) system, the normal equations
(At' diag(v / g^2) At + diag(s / f)) df = rhs, by Cholesky.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

from .problem import Problem


def _step_to_boundary(x: np.ndarray, dx: np.ndarray, fraction: float = 0.99) -> float:
    neg = dx < 0
    if not np.any(neg):
        return 1.0
    return float(min(1.0, fraction * np.min(-x[neg] / dx[neg])))


def _newton_direction(
    At: np.ndarray, v: np.ndarray, g: np.ndarray, f: np.ndarray, s: np.ndarray, rhs: np.ndarray
) -> np.ndarray:
    B = At * (np.sqrt(v) / g)[:, None]
    H = B.T @ B
    H[np.diag_indices_from(H)] += s / f
    try:
        return linalg.cho_solve(linalg.cho_factor(H, check_finite=False), rhs, check_finite=False)
    except linalg.LinAlgError:
        return np.asarray(linalg.lstsq(H, rhs, check_finite=False)[0])


def interior_point(
    problem: Problem, columns: np.ndarray, *, tol: float = 1e-9, max_iter: int = 200
) -> tuple[np.ndarray, int, bool]:
    """Weights on ``columns`` of the grid (zero elsewhere), iterations, converged.

    Mehrotra-style centring: sigma = (gap after the affine step / gap)^3,
    stopped when the dual residual and the mean complementarity are below ``tol``.
    """
    At = problem.At[:, columns]
    v = problem.v
    m = At.shape[1]
    f = np.full(m, 1.0 / m)
    s = np.ones(m)
    converged = False
    iterations = 0
    while iterations < max_iter:
        iterations += 1
        g = At @ f
        r1 = At.T @ (v / g) - 1.0 + s
        gap = float(f @ s) / m
        if np.max(np.abs(r1)) < tol and gap < tol:
            converged = True
            break
        # affine (predictor) direction, then the centred one
        df = _newton_direction(At, v, g, f, s, r1 - s)
        ds = -s - s / f * df
        a = min(_step_to_boundary(f, df, 1.0), _step_to_boundary(s, ds, 1.0))
        gap_aff = float((f + a * df) @ (s + a * ds)) / m
        mu = gap * min(1.0, (gap_aff / gap) ** 3) if gap > 0 else 0.0
        rhs = r1 + (mu - f * s) / f
        df = _newton_direction(At, v, g, f, s, rhs)
        ds = (mu - f * s) / f - s / f * df
        a = min(_step_to_boundary(f, df), _step_to_boundary(s, ds))
        f = f + a * df
        s = s + a * ds
    out = np.zeros(problem.At.shape[1])
    out[columns] = f / f.sum()
    return out, iterations, converged
