"""The blocked factor in NumPy: what the likelihood fits run (see :mod:`multilevel.linalg.factor`).

Eliminating the first block updates the dense rest by ``AR1 W A1R`` with
``W = blockdiag(T1 (L1_l L1_l')^{-1} T1')``; the update is whichever of the forms
in :mod:`multilevel.linalg.blocked` is cheapest for the cross-products (a fixed
sparse pattern, dense BLAS, or the pairs of an observation-level block), and the
rest is factored by LAPACK. Scalar templates in the rest scale rows and columns
in place instead of multiplying by ``Lt``.

The factor's ``LS`` is Fortran ordered and only its lower triangle is set (LAPACK
leaves the rest of the input there); its scalars are Python floats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.linalg import lapack, solve_triangular

from ..errors import ModelError
from .blocked import (
    DENSE_MAX_BYTES,
    DenseSchur,
    PairSchur,
    SchurForm,
    SchurPattern,
    blockdiag_factor,
    dense_cholesky,
    schur_update,
    solve_leading_lower,
)
from .crossprod import CrossProducts, Layout, as_dense
from .factor import Factor, Solution, rest_blocks
from .lambdas import lambda_diagonal, lambda_sandwich, times_lambda
from .rfp import factor_packed
from .wide import RestBorder, wide_factor_block

NAME = "numpy"
#: the namespace of the factor's scalars (Python floats), for :mod:`multilevel.linalg.criteria`
SCALARS = math


class NumpySystem:
    """Cross-products prepared for :func:`factor`: the Schur update's form and its targets."""

    __slots__ = ("A1R", "A11", "ARR", "full", "layout", "pattern", "ti", "tj", "zdiag")

    def __init__(self, cp: CrossProducts, pattern: SchurForm | None = None) -> None:
        lay = cp.layout
        self.layout: Layout = lay
        self.A11, self.A1R, self.ARR = cp.A11, cp.A1R, cp.ARR
        self.pattern = schur_update(cp.A1R, lay.n1, lay.q1) if pattern is None else pattern
        # a template of more than one column in the rest: Lt is not diagonal
        self.full = any(q > 1 for _, q in lay.rest)
        self.zdiag = np.arange(lay.mz)
        if isinstance(self.pattern, (SchurPattern, PairSchur)):
            self.ti, self.tj = np.divmod(self.pattern.targets, lay.m)


def system(cp: CrossProducts, pattern: SchurForm | None = None) -> NumpySystem:
    """The cross-products prepared for :func:`factor`.

    ``pattern``: a precomputed form of the Schur update (penalized IRLS reuses the
    structure of a :class:`~multilevel.linalg.blocked.PairSchur` across iterations);
    by default the cheapest of the sparse and dense forms for ``cp.A1R``.
    """
    return NumpySystem(cp, pattern)


def factor(system: NumpySystem, templates: Sequence[np.ndarray]) -> Factor:
    """Blocked Cholesky at the templates; raises ``LinAlgError`` if not positive definite."""
    Ts = tuple(templates)
    lay = system.layout
    mz = lay.mz
    L1, W1, logdet1 = blockdiag_factor(system.A11, Ts[0])
    rest = Ts[1:]
    pattern = system.pattern
    if isinstance(system.ARR, RestBorder):  # a wide crossed design: packed, factored in place
        block = wide_factor_block(system.ARR, lambda_diagonal(np, rest, lay.rest, lay.m), pattern, W1)
        LS = factor_packed(block)
        return _factor_of(LS, LS.diagonal(), Ts, L1, logdet1, lay)
    if not isinstance(pattern, (SchurPattern, PairSchur)):  # a dense form: the whole update
        # scalar templates keep it symmetric, so the triangle dense_cholesky reads will do
        if isinstance(pattern, DenseSchur) and not system.full:
            update = pattern.update_upper(W1)
        else:
            update = pattern.update(W1)
        G = system.ARR - update
        if system.full:
            G = lambda_sandwich(np, G, rest, lay.rest)
        elif mz:
            s = lambda_diagonal(np, rest, lay.rest, lay.m)
            G *= s[:, None]
            G *= s
    elif not system.full and mz:
        # scalar templates in the rest: scale while copying, and scale the update
        update = pattern.update(W1)
        s = lambda_diagonal(np, rest, lay.rest, lay.m)
        G = np.multiply(system.ARR, s[:, None], order="C")
        G *= s
        update *= s[system.ti] * s[system.tj]
        G.ravel()[pattern.targets] -= update
    else:
        G = system.ARR.copy(order="C")
        G.ravel()[pattern.targets] -= pattern.update(W1)
        if system.full:
            G = np.triu(G) + np.triu(G, 1).T
            G = lambda_sandwich(np, G, rest, lay.rest)
    if mz:
        G[system.zdiag, system.zdiag] += 1.0
    return _dense_factor(G, Ts, L1, logdet1, lay)


def _dense_factor(G: np.ndarray, Ts: tuple, L1: np.ndarray, logdet1: float, lay: Layout) -> Factor:
    """The factor from the dense block (upper triangle of C-ordered ``G``, overwritten)."""
    LS = dense_cholesky(G)
    return _factor_of(LS, np.diagonal(LS), Ts, L1, logdet1, lay)


def _factor_of(LS: Any, d: np.ndarray, Ts: tuple, L1: np.ndarray, logdet1: float, lay: Layout) -> Factor:
    """The factor's record from the dense factor ``LS`` and its diagonal ``d``."""
    mz = lay.mz
    logd = np.log(d[: mz + lay.p])
    logdet_z = logdet1 + 2.0 * float(logd[:mz].sum())
    logdet_x = 2.0 * float(logd[mz:].sum())
    return Factor(Ts, L1, LS, logdet_z, logdet_x, float(d[-1] ** 2))


def first_block_apply(system: NumpySystem, f: Factor, x: np.ndarray) -> np.ndarray:
    """``L1^{-1} T1' A1R Lt x`` (n1, q1) for a vector ``x`` over the dense rest (m,)."""
    lay = system.layout
    v = times_lambda(np, x, f.templates[1:], lay.rest, transpose=True)
    t = (system.A1R @ v).reshape(lay.n1, lay.q1) @ f.templates[0]  # rows: T1' t_l
    if lay.q1 == 1:
        return t / f.L1[:, :, 0]
    return np.linalg.solve(f.L1, t[:, :, None])[:, :, 0]


def _split_rest(x: np.ndarray, blocks: Sequence[tuple[int, int]]) -> list[np.ndarray]:
    out, start = [], 0
    for nl, q in blocks:
        out.append(x[start : start + nl * q].reshape(nl, q))
        start += nl * q
    return out


def solve(
    system: NumpySystem,
    f: Factor,
    beta: np.ndarray | None = None,
    noise: tuple[np.ndarray, np.ndarray] | None = None,
) -> Solution:
    """``beta`` (its estimate unless given) and ``u`` solving ``L_Z' u = c - L_XZ' beta``.

    ``noise = (e1 (n1, q1), eR (mz,))`` is added to the right-hand side, which
    makes ``u`` a draw from its conditional given ``beta`` when it is ``sigma``
    times standard normal noise.
    """
    lay = system.layout
    mz, p = lay.mz, lay.p
    LS = f.LS
    c = LS[-1, :-1]  # last row: [c_Z, c_X]
    if beta is None:
        beta = np.zeros(0)
        if p:
            beta = solve_triangular(LS[mz : mz + p, mz : mz + p], c[mz:], lower=True, trans="T")
    if mz:
        rhs = c[:mz] - LS[mz : mz + p, :mz].T @ beta
        if noise is not None:
            rhs = rhs + noise[1]
        u_rest = solve_leading_lower(LS, mz, rhs, trans=True)  # in the factor's memory when wide
    else:
        u_rest = np.zeros(0)
    # first block: L1' u1 = L1^{-1} T1' A1R Lt (e_y - [u_rest; beta; 0])
    rhs1 = first_block_apply(system, f, np.concatenate([-u_rest, -beta, [1.0]]))
    if noise is not None:
        rhs1 = rhs1 + noise[0]
    if lay.q1 == 1:
        u1 = rhs1 / f.L1[:, :, 0]
    else:
        u1 = np.linalg.solve(np.swapaxes(f.L1, 1, 2), rhs1[:, :, None])[:, :, 0]
    us = (u1, *_split_rest(u_rest, lay.rest))
    return Solution(beta, us, tuple(u @ T.T for u, T in zip(us, f.templates)))


def vcov_beta(system: NumpySystem, f: Factor, sigma: float) -> np.ndarray:
    """``sigma^2 (L_XX L_XX')^{-1}``: covariance of the fixed effects given the templates."""
    mz, p = system.layout.mz, system.layout.p
    if p == 0:
        return np.zeros((0, 0))
    LXX = np.tril(f.LS[mz : mz + p, mz : mz + p])
    if not np.isfinite(LXX).all():
        raise np.linalg.LinAlgError("the fixed-effect factor is not finite")
    Rinv, info = lapack.dtrtri(LXX, lower=1)
    if info != 0:
        raise np.linalg.LinAlgError("the fixed-effect factor is singular")
    return sigma**2 * (Rinv.T @ Rinv)


def check_conditional_variances(lay: Layout) -> None:
    """A :class:`~multilevel.errors.ModelError` where the conditional variances would need
    a dense ``n1 q1 x mz`` block past :data:`~multilevel.linalg.blocked.DENSE_MAX_BYTES`."""
    rows, mz = lay.n1 * lay.q1, lay.mz
    if rows * mz * 8 > DENSE_MAX_BYTES:
        raise ModelError(
            f"the conditional variances of this crossed design need a dense {rows} x {mz} block "
            f"({rows * mz * 8 / 2**30:.1f} GiB); the estimates and the random effects themselves "
            "do not, ask for those without their variances"
        )


def conditional_variances(system: NumpySystem, f: Factor, sigma: float) -> list[np.ndarray]:
    """Diagonal blocks of ``Var(b | y) = sigma^2 Lambda (L_Z L_Z')^{-1} Lambda'``.

    One (levels, q, q) array per grouping block, as lme4's ``condVar`` (beta held
    at its estimate).
    """
    lay = system.layout
    mz, n1, q1 = lay.mz, lay.n1, lay.q1
    check_conditional_variances(lay)
    L1inv = np.linalg.inv(f.L1)  # (n1, q1, q1)
    inv1 = np.swapaxes(L1inv, 1, 2) @ L1inv
    T1 = f.templates[0]
    out = []
    invZ = np.zeros((0, 0))
    if mz:
        LZ = np.asarray(f.LS[:mz, :mz])
        LZinv = solve_triangular(LZ, np.eye(mz), lower=True)
        # U_l = L1_l^{-1} T1' A1Z_l Lambda_R; block l of the inverse gains Y_l' Y_l,
        # Y_l = LZ^{-1} U_l' L1_l^{-1}
        A = as_dense(system.A1R)[:, :mz].reshape(n1, q1, mz)
        U = times_lambda(np, L1inv @ T1.T[None] @ A, f.templates[1:], lay.rest)  # (n1, q1, mz)
        Ym = solve_triangular(LZ, U.reshape(n1 * q1, mz).T, lower=True)  # (mz, n1*q1)
        Y = np.swapaxes(Ym.T.reshape(n1, q1, mz), 1, 2) @ L1inv  # (n1, mz, q1)
        inv1 = inv1 + np.swapaxes(Y, 1, 2) @ Y
        invZ = LZinv.T @ LZinv
    out.append(sigma**2 * (T1[None] @ inv1 @ T1.T[None]))
    return out + rest_blocks(invZ, f.templates[1:], lay.rest, sigma)
