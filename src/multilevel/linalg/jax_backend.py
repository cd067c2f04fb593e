"""The blocked factor in JAX: jit-able and differentiable (see :mod:`multilevel.linalg.factor`).

Dense throughout: ``A1R`` is held as ``(n1, q1, m)``, the first block's factors
are unrolled elementwise over the batch for ``q1 <= 4`` (LAPACK on CPU loops over
a batch one tiny matrix at a time; the closed-form recurrences on whole columns
are far faster), and the bordered rest is the dense Schur complement
``Lt' ARR Lt + I_Z - K'K`` with ``K = L1^{-1} T1' A1R Lt``, factored by
``jnp.linalg.cholesky`` (unrolled as well when it is at most 4 x 4). Where the
system is not positive definite the factor holds NaN rather than raising.

Importing this module imports JAX; :func:`multilevel.linalg.backends.backend` does
so only when asked. The cross-products need double precision
(:func:`enable_x64`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from .crossprod import CrossProducts, Layout, as_dense
from .factor import Factor, Solution, rest_blocks
from .lambdas import lambda_sandwich, times_lambda

NAME = "jax"
#: the namespace of the factor's scalars, for :mod:`multilevel.linalg.criteria`
SCALARS = jnp
UNROLL_MAX = 4  # batches of q x q blocks up to this size are factored elementwise


def enable_x64() -> None:
    """Double precision in JAX: the cross-products lose too much in single precision."""
    jax.config.update("jax_enable_x64", True)


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class JaxSystem:
    """The cross-products as dense arrays (a pytree; the layout is static)."""

    A11: Any  # (n1, q1, q1)
    A1R: Any  # (n1, q1, m)
    ARR: Any  # (m, m)
    layout: Layout = field(metadata={"static": True})


def system(cp: CrossProducts) -> JaxSystem:
    """The cross-products on the device, ``A1R`` dense."""
    lay = cp.layout
    A1R = as_dense(cp.A1R).reshape(lay.n1, lay.q1, lay.m)
    return JaxSystem(jnp.asarray(cp.A11), jnp.asarray(A1R), jnp.asarray(cp.ARR), lay)


def at_beta(system: JaxSystem, beta: Any) -> JaxSystem:
    """The system with ``X beta`` moved into the response: its rest is
    ``[Z_2 ... Z_K, y - X beta]`` and ``p = 0``.

    Its factor has the same ``log|L_Z|^2`` and, as ``r2``, the bordered factor's
    ``r2(beta)``; :func:`solve` on it gives ``u(beta)``. Where beta is given (the
    Bayesian likelihood) this saves the ``p`` columns of X in the dense rest: on
    models with few random effects past the first block, that is most of its size.
    """
    lay = system.layout
    mz = lay.mz
    w = jnp.concatenate([-jnp.asarray(beta), jnp.ones(1)])
    A1e = system.A1R[..., mz:] @ w
    Re = system.ARR[:, mz:] @ w
    ARR = jnp.block([[system.ARR[:mz, :mz], Re[:mz, None]], [Re[None, :mz], (w @ Re[mz:])[None, None]]])
    A1R = jnp.concatenate([system.A1R[..., :mz], A1e[..., None]], axis=-1)
    return JaxSystem(system.A11, A1R, ARR, replace(lay, p=0))


def chol_batch(M: Any) -> Any:
    """Lower Cholesky factors of a batch ``(n, q, q)``, unrolled for ``q <= UNROLL_MAX``."""
    q = M.shape[-1]
    if q > UNROLL_MAX:
        return jnp.linalg.cholesky(M)
    L: list[list[Any]] = [[None] * q for _ in range(q)]
    for j in range(q):
        s = M[:, j, j] - sum(L[j][k] ** 2 for k in range(j))
        L[j][j] = jnp.sqrt(s)
        for i in range(j + 1, q):
            L[i][j] = (M[:, i, j] - sum(L[i][k] * L[j][k] for k in range(j))) / L[j][j]
    zero = jnp.zeros_like(M[:, 0, 0])
    return jnp.stack([jnp.stack([L[i][j] if j <= i else zero for j in range(q)], -1) for i in range(q)], -2)


def solve_lower_batch(L: Any, B: Any) -> Any:
    """``L^{-1} B`` per level for lower-triangular ``L (n, q, q)`` and ``B (n, q, k)``."""
    q = L.shape[-1]
    if q > UNROLL_MAX:
        return solve_triangular(L, B, lower=True)
    rows: list[Any] = []
    for i in range(q):
        r = B[:, i, :] - sum(L[:, i, k, None] * rows[k] for k in range(i))
        rows.append(r / L[:, i, i, None])
    return jnp.stack(rows, axis=1)


def solve_upper_t_batch(L: Any, B: Any) -> Any:
    """``L^{-T} B`` per level (back substitution with the transpose of lower ``L``)."""
    q = L.shape[-1]
    if q > UNROLL_MAX:
        return solve_triangular(jnp.swapaxes(L, -1, -2), B, lower=False)
    rows: list[Any] = [None] * q
    for i in reversed(range(q)):
        r = B[:, i, :] - sum(L[:, k, i, None] * rows[k] for k in range(i + 1, q))
        rows[i] = r / L[:, i, i, None]
    return jnp.stack(rows, axis=1)


def _first_block(system: JaxSystem, T1: Any, rest: Sequence[Any]) -> tuple[Any, Any, Any]:
    """``L1``, ``K = L1^{-1} T1' A1R Lt`` (n1, q1, m) and ``log det(L1 L1')``."""
    q1 = system.layout.q1
    M11 = jnp.einsum("ji,ljk,km->lim", T1, system.A11, T1) + jnp.eye(q1)
    L1 = chol_batch(M11)
    B = jnp.einsum("ji,ljm->lim", T1, times_lambda(jnp, system.A1R, rest, system.layout.rest))
    logdet1 = 2.0 * jnp.sum(jnp.log(jnp.diagonal(L1, axis1=-2, axis2=-1)))
    return L1, solve_lower_batch(L1, B), logdet1


def factor(system: JaxSystem, templates: Sequence[Any]) -> Factor:
    """Blocked Cholesky at the templates (NaN where not positive definite)."""
    lay = system.layout
    mz, p, m = lay.mz, lay.p, lay.m
    Ts = tuple(jnp.asarray(T) for T in templates)
    rest = Ts[1:]
    L1, K, logdet1 = _first_block(system, Ts[0], rest)
    Kf = K.reshape(lay.n1 * lay.q1, m)
    eye_z = np.diag(np.concatenate([np.ones(mz), np.zeros(p + 1)]))
    G = lambda_sandwich(jnp, system.ARR, rest, lay.rest) + eye_z - Kf.T @ Kf
    LS = chol_batch(G[None])[0] if m <= UNROLL_MAX else jnp.linalg.cholesky(G)
    logd = jnp.log(jnp.diagonal(LS))
    return Factor(
        Ts,
        L1,
        LS,
        logdet1 + 2.0 * jnp.sum(logd[:mz]),
        2.0 * jnp.sum(logd[mz : mz + p]),
        LS[-1, -1] ** 2,
    )


def _split_rest(x: Any, blocks: Sequence[tuple[int, int]]) -> list[Any]:
    out, start = [], 0
    for nl, q in blocks:
        out.append(x[start : start + nl * q].reshape(nl, q))
        start += nl * q
    return out


def rest_solution(LS: Any, mz: int, p: int, beta: Any = None, noise: Any = None) -> tuple[Any, Any]:
    """``beta`` (its estimate unless given) and the rest's ``u`` from the dense factor:
    ``L_XX' beta = c_X``, ``L_Z' u = c_Z - L_XZ' beta (+ noise)``."""
    c = LS[-1, :-1]
    if beta is None:
        beta = (
            solve_triangular(LS[mz : mz + p, mz : mz + p], c[mz:], lower=True, trans=1) if p else jnp.zeros(0)
        )
    beta = jnp.asarray(beta)
    if not mz:
        return beta, jnp.zeros(0)
    rhs = c[:mz] - LS[mz : mz + p, :mz].T @ beta
    if noise is not None:
        rhs = rhs + noise
    return beta, solve_triangular(LS[:mz, :mz], rhs, lower=True, trans=1)


def solve(system: JaxSystem, f: Factor, beta: Any = None, noise: tuple[Any, Any] | None = None) -> Solution:
    """``beta`` (its estimate unless given) and ``u`` solving ``L_Z' u = c - L_XZ' beta``.

    ``noise = (e1 (n1, q1), eR (mz,))`` is added to the right-hand side, which
    makes ``u`` a draw from its conditional given ``beta`` when it is ``sigma``
    times standard normal noise.
    """
    lay = system.layout
    beta, u_rest = rest_solution(f.LS, lay.mz, lay.p, beta, None if noise is None else noise[1])
    rest = f.templates[1:]
    # first block: L1' u1 = L1^{-1} T1' A1R Lt (e_y - [u_rest; beta; 0])
    x = jnp.concatenate([-u_rest, -beta, jnp.ones(1)])
    t = (system.A1R @ times_lambda(jnp, x, rest, lay.rest, transpose=True)) @ f.templates[0]
    rhs1 = solve_lower_batch(f.L1, t[..., None])[..., 0]
    if noise is not None:
        rhs1 = rhs1 + noise[0]
    u1 = solve_upper_t_batch(f.L1, rhs1[..., None])[..., 0]
    us = (u1, *_split_rest(u_rest, lay.rest))
    return Solution(beta, us, tuple(u @ T.T for u, T in zip(us, f.templates)))


def vcov_beta(system: Any, f: Factor, sigma: Any) -> Any:
    """``sigma^2 (L_XX L_XX')^{-1}``: covariance of the fixed effects given the templates
    (from the dense factor and ``system.layout`` alone, for either JAX system)."""
    mz, p = system.layout.mz, system.layout.p
    Rinv = solve_triangular(f.LS[mz : mz + p, mz : mz + p], jnp.eye(p), lower=True)
    return sigma**2 * (Rinv.T @ Rinv)


def conditional_variances(system: JaxSystem, f: Factor, sigma: Any) -> list[Any]:
    """Diagonal blocks of ``Var(b | y) = sigma^2 Lambda (L_Z L_Z')^{-1} Lambda'``, one
    (levels, q, q) array per grouping block."""
    lay = system.layout
    mz, n1, q1 = lay.mz, lay.n1, lay.q1
    T1 = f.templates[0]
    eye1 = jnp.broadcast_to(jnp.eye(q1), (n1, q1, q1))
    L1inv = solve_lower_batch(f.L1, eye1)
    inv1 = jnp.swapaxes(L1inv, 1, 2) @ L1inv
    out = []
    invZ = jnp.zeros((0, 0))
    if mz:
        LZ = f.LS[:mz, :mz]
        LZinv = solve_triangular(LZ, jnp.eye(mz), lower=True)
        # U_l = L1_l^{-1} T1' A1Z_l Lambda_R; block l of the inverse gains Y_l' Y_l,
        # Y_l = LZ^{-1} U_l' L1_l^{-1}
        _, K, _ = _first_block(system, T1, f.templates[1:])
        U = K[:, :, :mz]
        Ym = LZinv @ U.reshape(n1 * q1, mz).T  # (mz, n1 q1)
        Y = jnp.swapaxes(Ym.T.reshape(n1, q1, mz), 1, 2) @ L1inv  # (n1, mz, q1)
        inv1 = inv1 + jnp.swapaxes(Y, 1, 2) @ Y
        invZ = LZinv.T @ LZinv
    out.append(sigma**2 * (T1[None] @ inv1 @ T1.T[None]))
    return out + rest_blocks(invZ, f.templates[1:], lay.rest, sigma)
