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
singular (a boundary fit) the gradient is taken just inside the boundary.
This is the NumPy backend's gradient; on JAX, ``jax.grad`` of the criterion
gives the same numbers (``tests/linalg/test_backends.py``).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import lapack, solve_triangular

from ..linalg.blocked import PairSchur, invert_leading_block, solve_leading_lower
from ..linalg.lambdas import all_scalar, lambda_diagonal, lambda_sandwich
from ..linalg.numpy_backend import NumpySystem, first_block_apply
from ..linalg.rfp import PackedFactor
from .objective import Factor, LmmObjective
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


def _omega_inverse_sums(system: NumpySystem, f: Factor, M1inv: np.ndarray) -> list[np.ndarray]:
    """``sum_l Omega^{-1}_ll`` per grouping block, from the diagonal blocks of the inverse."""
    lay = system.layout
    mz = lay.mz
    Ts = f.templates
    D = [M1inv.sum(axis=0)]
    if not mz:
        return D
    scalar = all_scalar(Ts[1:])
    pattern = system.pattern
    packed = isinstance(f.LS, PackedFactor)
    if packed or (scalar and hasattr(pattern, "quadratic_forms_lower") and f.LS.flags.f_contiguous):
        # a wide design's block (gigabytes): inverted in the factor's own memory, which
        # the gradient no longer needs (its solves come first); packed, it stays packed
        Sinv = invert_leading_block(f.LS, mz)
    else:
        Sinv, info = lapack.dpotri(np.array(f.LS[:mz, :mz], order="F"), lower=1, overwrite_c=1)
        if info != 0:
            raise np.linalg.LinAlgError("cannot invert the dense factor")
    # dpotri fills the lower triangle
    start = 0
    if scalar:
        s = lambda_diagonal(np, Ts[1:], lay.rest, mz)
        diag = Sinv.diagonal() if packed else np.diagonal(Sinv)
        for nl, _ in lay.rest:
            D.append(np.array([[diag[start : start + nl].sum()]]))
            start += nl
    else:
        if packed:
            Sinv = Sinv.dense()  # a rest of vector terms is not a wide design's: small
        Sinv = np.tril(Sinv) + np.tril(Sinv, -1).T
        for nl, q in lay.rest:
            D.append(_block_sums(Sinv, start, nl, q))
            start += nl * q
        Sinv = lambda_sandwich(np, Sinv, Ts[1:], lay.rest, transpose=True)  # Lambda S^-1 Lambda'
    # first block: Q_l = A_1Z[l] (Lambda_R S^{-1} Lambda_R') A_Z1[l]
    if isinstance(pattern, PairSchur):
        raise TypeError("the LMM gradient needs the objective's own Schur pattern")
    if scalar and hasattr(pattern, "quadratic_forms_lower"):
        # the scattered form of a wide design reads S^{-1}'s lower triangle in place
        Q = pattern.quadratic_forms_lower(Sinv, s)
    elif pattern.dense:
        M = np.zeros((lay.m, lay.m))
        if scalar:
            Sfull = Sinv.dense() if packed else np.tril(Sinv) + np.tril(Sinv, -1).T
            M[:mz, :mz] = Sfull * s[:, None] * s[None, :]
        else:
            M[:mz, :mz] = Sinv
        Q = pattern.quadratic_forms(M)
    else:
        ti, tj = system.ti, system.tj
        inZ = tj < mz
        x = np.zeros(ti.size)
        a, b = ti[inZ], tj[inZ]
        if packed:
            x[inZ] = Sinv.entries(b, a) * s[a] * s[b]
        else:
            x[inZ] = Sinv[b, a] * s[a] * s[b] if scalar else Sinv[a, b]
        Q = pattern.quadratic_forms(x)
    T1 = Ts[0]
    D[0] = D[0] + (M1inv @ T1.T @ Q @ T1 @ M1inv).sum(axis=0)
    return D


def _fixed_effect_sums(system: NumpySystem, f: Factor) -> list[np.ndarray]:
    """``sum_l F_l F_l'`` per grouping block (the REML term), ``F = L_Z^{-T} L_XZ' L_XX^{-T}``."""
    lay = system.layout
    mz, p, n1, q1 = lay.mz, lay.p, lay.n1, lay.q1
    LS = f.LS
    LXX = LS[mz : mz + p, mz : mz + p]
    # G = L_XZ' L_XX^{-T}: rows of block 1 are U's X columns, the rest from LS
    e = np.zeros((lay.m, p))
    e[mz : mz + p] = np.eye(p)
    U_X = np.stack([first_block_apply(system, f, e[:, j]) for j in range(p)], axis=-1)  # (n1, q1, p)
    G1 = solve_triangular(LXX, U_X.reshape(n1 * q1, p).T, lower=True).T
    GR = solve_triangular(LXX, LS[mz : mz + p, :mz], lower=True).T if mz else np.zeros((0, p))
    FR = solve_leading_lower(LS, mz, GR, trans=True) if mz else GR  # in the factor's memory when wide
    UZF = np.zeros((n1, q1, p))
    if mz:
        for j in range(p):
            v = np.zeros(lay.m)
            v[:mz] = FR[:, j]
            UZF[:, :, j] = first_block_apply(system, f, v)
    rhs = G1.reshape(n1, q1, p) - UZF
    F1 = np.linalg.solve(np.swapaxes(f.L1, 1, 2), rhs)  # (n1, q1, p)
    FF = [np.einsum("lap,lbp->ab", F1, F1)]
    start = 0
    for nl, q in lay.rest:
        Fk = FR[start : start + nl * q].reshape(nl, q, p)
        FF.append(np.einsum("lap,lbp->ab", Fk, Fk))
        start += nl * q
    return FF


def gradient(obj: LmmObjective, f: Factor) -> np.ndarray:
    """d criterion / d theta at the factor's theta (templates must be invertible). For a
    wide design (the scattered Schur form) the factor's dense block is overwritten by
    its inverse: the factor is spent."""
    spec = obj.spec
    p = obj.p
    M1inv = np.linalg.inv(f.L1)
    M1inv = np.swapaxes(M1inv, 1, 2) @ M1inv  # (L L')^{-1} per level
    FF = _fixed_effect_sums(obj.system, f) if obj.reml and p else None
    UU = [u.T @ u for u in solve(obj, f).u]
    D = _omega_inverse_sums(obj.system, f, M1inv)  # last: a wide block's factor is spent here
    nu = obj.n - p if obj.reml else obj.n
    # d(nu log r2) for a profiled residual scale, d(r2 / sigma^2) for a fixed one
    r2_weight = 2.0 * nu / f.r2 if obj.sigma_fixed is None else 2.0 / obj.sigma_fixed**2
    tm = spec.theta_map
    grad = np.empty(tm.size)
    per_block = []
    for k, (g, T) in enumerate(zip(spec.groupings, f.templates)):
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
    as the criterion is even in theta. On the JAX backend the gradient is
    ``jax.grad`` of the criterion (:meth:`LmmObjective.value_and_grad`).
    """
    theta = np.asarray(theta, dtype=float)
    if obj.backend.NAME == "jax":
        return obj.value_and_grad(theta)
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
