"""Finite-difference Jacobians and Hessians with Richardson extrapolation.

One set of evaluation points serves both: ``F`` returns a vector, the Jacobian
is taken of all of it and the Hessian of its first element. Step sizes follow
numDeriv's ``genD`` (h = 0.1 |x| + 1e-4 where x is near 0, halved ``levels``
times), which lmerTest uses for Satterthwaite's degrees of freedom.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def jacobian_hessian(
    F: Callable[[np.ndarray], np.ndarray],
    x: np.ndarray,
    *,
    d: float = 0.1,
    eps: float = 1e-4,
    zero_tol: float = 1.4901161193847656e-08,
    levels: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """Richardson-extrapolated Jacobian of ``F`` and Hessian of ``F(x)[0]``.

    Examples
    --------
    >>> J, H = jacobian_hessian(lambda v: np.array([v[0] ** 2 * v[1]]), np.array([1.0, 2.0]))
    >>> np.round(J, 6).tolist(), np.round(H, 6).tolist()
    ([[4.0, 1.0]], [[4.0, 2.0], [2.0, 0.0]])
    """
    x = np.asarray(x, dtype=float)
    k = x.size
    f0 = np.asarray(F(x), dtype=float)
    h0 = np.abs(d * x) + eps * (np.abs(x) < zero_tol)
    jacs, hess = [], []
    for lev in range(levels):
        h = h0 / (2.0**lev)
        fp = np.empty((k, f0.size))
        fm = np.empty((k, f0.size))
        for i in range(k):
            e = np.zeros(k)
            e[i] = h[i]
            fp[i] = F(x + e)
            fm[i] = F(x - e)
        J = ((fp - fm) / (2 * h[:, None])).T
        H = np.empty((k, k))
        for i in range(k):
            H[i, i] = (fp[i, 0] - 2 * f0[0] + fm[i, 0]) / h[i] ** 2
            for j in range(i):
                ei = np.zeros(k)
                ej = np.zeros(k)
                ei[i] = h[i]
                ej[j] = h[j]
                fpp = F(x + ei + ej)[0]
                fpm = F(x + ei - ej)[0]
                fmp = F(x - ei + ej)[0]
                fmm = F(x - ei - ej)[0]
                H[i, j] = H[j, i] = (fpp - fpm - fmp + fmm) / (4 * h[i] * h[j])
        jacs.append(J)
        hess.append(H)
    return _richardson(jacs), _richardson(hess)


def _richardson(estimates: list[np.ndarray]) -> np.ndarray:
    """Extrapolate O(h^2) central differences computed at h, h/2, h/4, ..."""
    table = list(estimates)
    m = 1
    while len(table) > 1:
        factor = 4.0**m
        table = [(factor * table[i + 1] - table[i]) / (factor - 1) for i in range(len(table) - 1)]
        m += 1
    return table[0]


def central_jacobian(F: Callable[[np.ndarray], np.ndarray], x: np.ndarray, steps: np.ndarray) -> np.ndarray:
    """Central-difference Jacobian (m, k) of ``F`` at ``x`` with one step per coordinate
    (2 k evaluations; no extrapolation, for analytic gradients and checks).

    Examples
    --------
    >>> J = central_jacobian(lambda v: np.array([v[0] ** 2 * v[1]]), np.array([1.0, 2.0]), np.full(2, 1e-4))
    >>> np.round(J, 6).tolist()
    [[4.0, 1.0]]
    """
    x = np.asarray(x, dtype=float)
    cols = []
    for i in range(x.size):
        xp, xm = x.copy(), x.copy()
        xp[i] += steps[i]
        xm[i] -= steps[i]
        cols.append((np.atleast_1d(F(xp)) - np.atleast_1d(F(xm))) / (2 * steps[i]))
    return np.stack(cols, axis=1)
