"""Estimates from a blocked factor: beta, spherical u, random effects b = Lambda u,
their conditional variances, and vcov(beta).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import solve_triangular

from ..linalg.crossprod import as_dense
from .objective import Factor, LmmObjective


@dataclass(frozen=True)
class Solution:
    beta: np.ndarray
    u: list[np.ndarray]  # per grouping block, (n_levels, q)
    b: list[np.ndarray]  # per grouping block, (n_levels, q)
    sigma: float


def _first_block_apply(obj: LmmObjective, f: Factor, x_rest: np.ndarray) -> np.ndarray:
    """``L1^{-1} T1' A1R Lt x`` for a vector ``x`` over the dense rest (n1, q1)."""
    lay = obj.layout
    v = _apply_lambda_rest(obj, f, x_rest)
    t = (obj.cp.A1R @ v).reshape(lay.n1, lay.q1)
    t = t @ f.templates[0]  # rows: T1' t_l  (t_l as row vector times T1)
    if lay.q1 == 1:
        return t / f.L1[:, :, 0]
    return np.linalg.solve(f.L1, t[:, :, None])[:, :, 0]


def _apply_lambda_rest(obj: LmmObjective, f: Factor, x: np.ndarray) -> np.ndarray:
    out = np.array(x, dtype=float, copy=True)
    start = 0
    for T, nl in zip(f.templates[1:], obj.z_levels):
        q = T.shape[0]
        blk = out[start : start + nl * q].reshape(nl, q)
        out[start : start + nl * q] = (blk @ T.T).ravel()
        start += nl * q
    return out


def solve(obj: LmmObjective, f: Factor) -> Solution:
    """Fixed effects and conditional modes at the factor's theta."""
    lay = obj.layout
    mz, p = lay.mz, lay.p
    LS = f.LS
    c = LS[-1, :-1]  # last row: [c_Z, c_X]
    R_X = LS[mz : mz + p, mz : mz + p]
    beta = solve_triangular(R_X, c[mz:], lower=True, trans="T") if p else np.zeros(0)
    if mz:
        rhs = c[:mz] - LS[mz : mz + p, :mz].T @ beta
        u_rest = solve_triangular(LS[:mz, :mz], rhs, lower=True, trans="T")
    else:
        u_rest = np.zeros(0)
    # first block: L1' u1 = c1 - U [u_rest; beta; 0], c1 = U e_y
    e_y = np.zeros(lay.m)
    e_y[-1] = 1.0
    x = np.concatenate([u_rest, beta, [0.0]])
    rhs1 = _first_block_apply(obj, f, e_y) - _first_block_apply(obj, f, x)
    if lay.q1 == 1:
        u1 = rhs1 / f.L1[:, :, 0]
    else:
        u1 = np.linalg.solve(np.swapaxes(f.L1, 1, 2), rhs1[:, :, None])[:, :, 0]
    us = [u1]
    start = 0
    for g in obj.spec.groupings[1:]:
        us.append(u_rest[start : start + g.size].reshape(g.n_levels, g.q))
        start += g.size
    bs = [u @ T.T for u, T in zip(us, f.templates)]
    return Solution(beta=beta, u=us, b=bs, sigma=obj.sigma(f))


def vcov_beta(obj: LmmObjective, f: Factor, sigma: float) -> np.ndarray:
    """``sigma^2 (R_X R_X')^{-1}``: covariance of the fixed effects given theta."""
    mz, p = obj.layout.mz, obj.layout.p
    R_X = f.LS[mz : mz + p, mz : mz + p]
    Rinv = solve_triangular(R_X, np.eye(p), lower=True)
    return sigma**2 * (Rinv.T @ Rinv)


def conditional_variances(obj: LmmObjective, f: Factor, sigma: float) -> list[np.ndarray]:
    """Diagonal blocks of ``Var(b | y) = sigma^2 Lambda (L_Z L_Z')^{-1} Lambda'``.

    One (n_levels, q, q) array per grouping block, as lme4's ``condVar``
    (beta held at its estimate).
    """
    lay = obj.layout
    mz = lay.mz
    n1, q1 = lay.n1, lay.q1
    L1inv = np.linalg.inv(f.L1)  # (n1, q1, q1)
    inv1 = np.swapaxes(L1inv, 1, 2) @ L1inv
    out = []
    if mz:
        LZ = np.asarray(f.LS[:mz, :mz])
        LZinv = solve_triangular(LZ, np.eye(mz), lower=True)
        # B L1^{-1}: column (l, a) of B is the Z-part of U' row (l, a)
        # U = L1^{-1} T1' A1R Lt  =>  B L1^{-1} = (U_Z)' L1^{-T}... built row-block-wise
        A = as_dense(obj.cp.A1R)[:, :mz].reshape(n1, q1, mz)
        U = _right_lambda(obj, f, L1inv @ f.templates[0].T[None] @ A)  # (n1, q1, mz)
        # Y_l = LZ^{-1} U_l' L1_l^{-1}; block l of the inverse gains Y_l' Y_l
        Ym = solve_triangular(LZ, U.reshape(n1 * q1, mz).T, lower=True)  # (mz, n1*q1)
        Y = np.swapaxes(Ym.T.reshape(n1, q1, mz), 1, 2) @ L1inv  # (n1, mz, q1)
        inv1 = inv1 + np.swapaxes(Y, 1, 2) @ Y
        invZ = LZinv.T @ LZinv
    T1 = f.templates[0]
    out.append(sigma**2 * (T1[None] @ inv1 @ T1.T[None]))
    start = 0
    for g, T in zip(obj.spec.groupings[1:], f.templates[1:]):
        blk = np.empty((g.n_levels, g.q, g.q))
        for lev in range(g.n_levels):
            sl = slice(start + lev * g.q, start + (lev + 1) * g.q)
            blk[lev] = invZ[sl, sl]
        out.append(sigma**2 * (T[None] @ blk @ T.T[None]))
        start += g.size
    return out


def _right_lambda(obj: LmmObjective, f: Factor, M: np.ndarray) -> np.ndarray:
    """``M @ Lambda_{2..K}`` over the last axis of ``M`` (length mz)."""
    out = np.array(M, copy=True)
    start = 0
    for T, nl in zip(f.templates[1:], obj.z_levels):
        q = T.shape[0]
        sl = slice(start, start + nl * q)
        blk = out[..., sl].reshape(*out.shape[:-1], nl, q)
        out[..., sl] = (blk @ T).reshape(*out.shape[:-1], nl * q)
        start += nl * q
    return out
