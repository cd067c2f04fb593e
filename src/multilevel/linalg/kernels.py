"""Numba-compiled row passes of penalized IRLS.

A GLMM fit runs a few hundred PIRLS iterations. In NumPy each recomputation of
the weighted cross-products of ``[Z X z]`` is a dozen ``bincount`` passes over
the rows, each paying its own overhead; :func:`weights_pass` forms the working
weights and response and all the cross-products (in the dense layout of
:mod:`multilevel.linalg.crossprod`) in one pass, and :func:`linear_predictor` gathers
``Z Lambda u`` in one more. The transcendental functions (inverse link, its
derivative, log densities) stay in NumPy, whose vectorized versions were
measured faster here than Numba's scalar ones; only the families' variance
functions are repeated below, selected by an int code that each family declares
as its ``kernel_code`` (0 binomial, 1 Poisson, 2 Gaussian, 3 Gamma, 4 inverse
Gaussian, 5 negative binomial; checked against the families' own variance
functions in ``tests/glmm/test_kernels.py``). A family without a code runs
PIRLS in NumPy.

Numba compiles on first use and caches on disk (``cache=True``); this module is
imported only when a GLMM is fitted, so ``import multilevel`` and LMM fits
never load Numba.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from numba import njit


class XOuter(NamedTuple):
    """The rows' products of fixed-effect columns ``j <= k`` (n, p (p + 1) / 2)."""

    products: np.ndarray
    j: np.ndarray
    k: np.ndarray


@njit(cache=True, inline="always", error_model="numpy")
def _variance(code: int, mu: float, disp: float) -> float:  # pragma: no cover - compiled
    if code == 0:
        return mu * (1.0 - mu)
    if code == 1:
        return mu
    if code == 2:
        return disp
    if code == 3:
        return disp * mu * mu
    if code == 4:
        return disp * mu * mu * mu
    return mu + mu * mu / disp


@njit(cache=True, nogil=True, error_model="numpy")
def linear_predictor(
    base: np.ndarray, V: np.ndarray, idx: np.ndarray, b: np.ndarray
) -> Any:  # pragma: no cover
    """``eta = base + sum_j V[:, j] b[idx[:, j]]``: ``base`` is the offset plus
    ``X beta``, ``V`` (n, Q) every row's random-effect term values and ``idx``
    (n, Q) the position of the matching effect in the flat vector ``b`` of all
    ``Lambda u``."""
    n, Q = V.shape
    eta = np.empty(n)
    for i in range(n):
        e = base[i]
        for j in range(Q):
            e += V[i, j] * b[idx[i, j]]
        eta[i] = e
    return eta


@njit(cache=True, nogil=True, error_model="numpy")
def weights_pass(
    eta: np.ndarray,
    mu: np.ndarray,
    mu_eta: np.ndarray,
    y: np.ndarray,
    w0: np.ndarray,
    zshift: np.ndarray,
    family: int,
    disp: float,
    codes1: np.ndarray,
    v1: np.ndarray,
    zc: np.ndarray,
    zv: np.ndarray,
    X: np.ndarray,
    xx: XOuter,
    n1: int,
    mz: int,
) -> Any:  # pragma: no cover - compiled
    """Working weights ``W = w0 mu_eta^2 / V(mu)`` and the cross-products ``A11``,
    ``A1R``, ``ARR`` of ``[Z X z]`` weighted by W, with the working response
    ``z = eta - zshift + (y - mu) / mu_eta`` (``zshift``: the offset, plus ``X beta``
    when beta is fixed). Returns (W, A11, A1R, ARR).

    ``codes1``/``v1``: levels and term values of the first grouping block;
    ``zc``/``zv`` (n, r): column among the ``mz`` other random effects and value
    of each row's entries; ``X`` (n, p), empty when beta is fixed, and ``xx`` its
    rows' products (:func:`x_outer`).

    Why this is long: one compiled loop over the rows computes the weights and every
    product in the same pass (each row read once from memory); split into
    functions, Numba would inline them back or pay a call per row.
    """
    n, q1 = v1.shape
    r = zc.shape[1]
    p = X.shape[1]
    m = mz + p + 1
    W = np.empty(n)
    A11 = np.zeros((n1, q1, q1))
    A1R = np.zeros((n1 * q1, m))
    ARR = np.zeros((m, m))
    for i in range(n):
        me = mu_eta[i]
        wi = w0[i] * me * me / _variance(family, mu[i], disp)
        W[i] = wi
        zi = eta[i] - zshift[i] + (y[i] - mu[i]) / me
        lev = codes1[i]
        if q1 == 1:
            va = wi * v1[i, 0]
            A11[lev, 0, 0] += va * v1[i, 0]
            for t in range(r):
                A1R[lev, zc[i, t]] += va * zv[i, t]
            for j in range(p):
                A1R[lev, mz + j] += va * X[i, j]
            A1R[lev, m - 1] += va * zi
        else:
            for a in range(q1):
                va = wi * v1[i, a]
                for c in range(q1):
                    A11[lev, a, c] += va * v1[i, c]
                row = lev * q1 + a
                for t in range(r):
                    A1R[row, zc[i, t]] += va * zv[i, t]
                for j in range(p):
                    A1R[row, mz + j] += va * X[i, j]
                A1R[row, m - 1] += va * zi
        for t in range(r):
            ct = zc[i, t]
            vt = wi * zv[i, t]
            for s in range(r):
                ARR[ct, zc[i, s]] += vt * zv[i, s]
            for j in range(p):
                ARR[ct, mz + j] += vt * X[i, j]
            ARR[ct, m - 1] += vt * zi
        for j in range(p):
            ARR[mz + j, m - 1] += wi * X[i, j] * zi
        ARR[m - 1, m - 1] += wi * zi * zi
    # X'WX: one matrix-vector product over the rows' fixed outer products
    if p > 0:
        sums = W @ xx.products
        for e in range(xx.j.shape[0]):
            ARR[mz + xx.j[e], mz + xx.k[e]] = sums[e]
    for t in range(mz):
        for j in range(p + 1):
            ARR[mz + j, t] = ARR[t, mz + j]
    for j in range(p + 1):
        for k in range(j + 1, p + 1):
            ARR[mz + k, mz + j] = ARR[mz + j, mz + k]
    return W, A11, A1R, ARR


def x_outer(X: np.ndarray) -> XOuter:
    """``X[:, j] * X[:, k]`` for every ``j <= k``: fixed for a fit, so ``X'WX`` is one
    matrix-vector product per pass."""
    j, k = np.triu_indices(X.shape[1])
    return XOuter(np.ascontiguousarray(X[:, j] * X[:, k]), j.astype(np.int64), k.astype(np.int64))
