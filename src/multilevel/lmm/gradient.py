"""Analytic gradient of the profiled REML / ML criterion in theta.

With ``Omega = Lambda'Z'Z Lambda + I``, ``u`` the spherical random effects, ``r^2`` the
penalized RSS and ``F = L_Z^{-T} L_XZ' L_XX^{-T}``, and for a template entry
``theta_t = T[r, c]`` of grouping block k (``d Lambda / d theta_t`` puts a 1 at
(r, c) of every level's block):

* ``d log|Omega|   = 2 [ (n_k I - sum_l Omega^{-1}_ll) T^{-1} ]_{c r}``
* ``d log|R_X|^2   = -2 [ (sum_l F_l F_l') T^{-1} ]_{c r}``
* ``d log r^2      = -2 / r^2 [ (sum_l u_l u_l') T^{-1} ]_{c r}``

(the last by the envelope theorem, ``Lambda'Z' res = u``). Only per-level diagonal
blocks of ``Omega^{-1}`` are needed: for the dense rest they come from the inverse
of its factor, for the first block through the same sparse outer-product
pattern the objective uses (``SchurPattern.P``, transposed). Where a template is
singular (a boundary fit) the caller falls back to finite differences.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import lapack, solve_triangular

from ..linalg.blocked import DenseSchur, PairSchur, scale_rest
from .objective import Factor, LmmObjective
from .solution import _first_block_apply as _first_block
from .solution import solve


def _block_sums(M: np.ndarray, start: int, nl: int, q: int) -> np.ndarray:
    """sum over levels of the q x q diagonal blocks of M[start:start+nl*q, same]."""
    idx = start + np.arange(nl * q).reshape(nl, q)
    out = np.empty((q, q))
    for a in range(q):
        for b in range(q):
            out[a, b] = M[idx[:, a], idx[:, b]].sum()
    return out


def templates_invertible(f: Factor, tol: float = 1e-10) -> bool:
    return all(np.all(np.abs(np.diag(T)) > tol) for T in f.templates)


def gradient(obj: LmmObjective, f: Factor) -> np.ndarray:
    """d criterion / d theta at the factor's theta (templates must be invertible)."""
    spec = obj.spec
    lay = obj.layout
    mz, p, n1, q1 = lay.mz, lay.p, lay.n1, lay.q1
    Ts = f.templates
    LS = f.LS
    sol = solve(obj, f)
    M1inv = np.linalg.inv(f.L1)
    M1inv = np.swapaxes(M1inv, 1, 2) @ M1inv  # (L L')^{-1} per level

    # ---- sum_l Omega^{-1}_ll per block -------------------------------
    D = [M1inv.sum(axis=0)]
    if mz:
        Sinv, info = lapack.dpotri(np.array(LS[:mz, :mz], order="F"), lower=1)
        if info != 0:
            raise np.linalg.LinAlgError("cannot invert the dense factor")
        # dpotri fills the lower triangle
        scalar = all(T.shape[0] == 1 for T in Ts[1:])
        if scalar:
            s = np.ones(mz)
            start = 0
            for g, T in zip(spec.groupings[1:], Ts[1:]):
                D.append(np.array([[np.trace(Sinv[start : start + g.n_levels, start : start + g.n_levels])]]))
                s[start : start + g.n_levels] = T[0, 0]
                start += g.size
        else:
            Sinv = np.tril(Sinv) + np.tril(Sinv, -1).T
            start = 0
            for g in spec.groupings[1:]:
                D.append(_block_sums(Sinv, start, g.n_levels, g.q))
                start += g.size
            scale_rest(Sinv, [T.T for T in Ts[1:]], obj.z_levels)
        # first block: Q_l = A_1Z[l] (Lambda_R S^{-1} Lambda_R') A_Z1[l]
        pattern = obj.pattern
        if isinstance(pattern, PairSchur):
            raise TypeError("the LMM gradient needs the objective's own Schur pattern")
        if isinstance(pattern, DenseSchur):
            M = np.zeros((lay.m, lay.m))
            if scalar:
                Sfull = np.tril(Sinv) + np.tril(Sinv, -1).T
                M[:mz, :mz] = Sfull * s[:, None] * s[None, :]
            else:
                M[:mz, :mz] = Sinv
            Q = pattern.quadratic_forms(M)
        else:
            ti, tj = obj._ti, obj._tj
            inZ = tj < mz
            x = np.zeros(ti.size)
            a, b = ti[inZ], tj[inZ]
            x[inZ] = Sinv[b, a] * s[a] * s[b] if scalar else Sinv[a, b]
            Q = pattern.quadratic_forms(x)
        T1 = Ts[0]
        D[0] = D[0] + (M1inv @ T1.T @ Q @ T1 @ M1inv).sum(axis=0)

    # ---- sum_l F_l F_l' per block (REML only) ------------------------
    FF = None
    if obj.reml and p:
        LXX = LS[mz : mz + p, mz : mz + p]
        # G = L_XZ' L_XX^{-T}: rows of block 1 are U's X columns, the rest from LS
        e = np.zeros((lay.m, p))
        e[mz : mz + p] = np.eye(p)
        U_X = np.stack([_first_block(obj, f, e[:, j]) for j in range(p)], axis=-1)  # (n1, q1, p)
        G1 = solve_triangular(LXX, U_X.reshape(n1 * q1, p).T, lower=True).T
        GR = solve_triangular(LXX, LS[mz : mz + p, :mz], lower=True).T if mz else np.zeros((0, p))
        FR = solve_triangular(LS[:mz, :mz], GR, lower=True, trans="T") if mz else GR
        UZF = np.zeros((n1, q1, p))
        if mz:
            for j in range(p):
                v = np.zeros(lay.m)
                v[:mz] = FR[:, j]
                UZF[:, :, j] = _first_block(obj, f, v)
        rhs = G1.reshape(n1, q1, p) - UZF
        F1 = np.linalg.solve(np.swapaxes(f.L1, 1, 2), rhs)  # (n1, q1, p)
        FF = [np.einsum("lap,lbp->ab", F1, F1)]
        start = 0
        for g in spec.groupings[1:]:
            Fk = FR[start : start + g.size].reshape(g.n_levels, g.q, p)
            FF.append(np.einsum("lap,lbp->ab", Fk, Fk))
            start += g.size

    # ---- sum_l u_l u_l' per block ------------------------------------
    UU = [u.T @ u for u in sol.u]
    nu = obj.n - p if obj.reml else obj.n
    r2 = f.r2

    # d(nu log r2) for a profiled residual scale, d(r2 / sigma^2) for a fixed one
    r2_weight = 2.0 * nu / r2 if obj.sigma_fixed is None else 2.0 / obj.sigma_fixed**2
    tm = spec.theta_map
    grad = np.empty(tm.size)
    per_block = []
    for k, (g, T) in enumerate(zip(spec.groupings, Ts)):
        Tinv = np.linalg.inv(T)
        Mk = 2.0 * (g.n_levels * np.eye(g.q) - D[k]) @ Tinv
        Mk -= r2_weight * UU[k] @ Tinv
        if FF is not None:
            Mk -= 2.0 * FF[k] @ Tinv
        per_block.append(Mk)
    for i, (b, r, c) in enumerate(zip(tm.block, tm.row, tm.col)):
        grad[i] = per_block[b][c, r]
    return grad


BOUNDARY_DELTA = 1e-6


def criterion_and_gradient(obj: LmmObjective, theta: np.ndarray) -> tuple[float, np.ndarray]:
    """Criterion and its gradient; ``(inf, 0)`` where the factorization fails.

    On the boundary (a template diagonal at 0) the gradient is taken at the
    nearest interior point with that diagonal at ``BOUNDARY_DELTA``: the
    gradient is continuous there, and for scalar terms it is 0 at 0 exactly,
    as the criterion is even in theta.
    """
    theta = np.asarray(theta, dtype=float)
    try:
        f = obj.factor(theta)
    except np.linalg.LinAlgError:
        return float("inf"), np.zeros_like(theta)
    val = obj.criterion(f)
    if not templates_invertible(f, BOUNDARY_DELTA / 2):
        tm = obj.spec.theta_map
        diag = tm.row == tm.col
        moved = theta.copy()
        small = diag & (np.abs(theta) < BOUNDARY_DELTA)
        moved[small] = BOUNDARY_DELTA
        try:
            f = obj.factor(moved)
        except np.linalg.LinAlgError:
            return val, np.zeros_like(theta)
    return val, gradient(obj, f)
