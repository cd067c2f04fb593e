"""Adaptive Gauss-Hermite quadrature of a nonlinear mixed model with one grouping factor.

Given beta and theta the levels are independent, so the likelihood is a product of
integrals over each level's spherical effects ``u_j`` (all parameters' effects on
that factor, ``q`` per level). With the modes ``u_j`` and the upper factor ``R_j`` of
``J_j'J_j + I`` from PNLS, ``u = u_j + sigma R_j^{-1} z`` turns each integral into one
against the standard normal density, taken on a product grid of ``nagq`` nodes per
dimension. One node gives the Laplace approximation.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import ModelError
from ..linalg.quadrature import hermite_grid
from ..model.nonlinear import NlmmProblem

if TYPE_CHECKING:
    from .laplace import Kernels, NlmmObjective

MAX_NODES = 25
MAX_POINTS = 20_000  # nagq ** q


def check_agq(problem: NlmmProblem, nagq: int) -> None:
    groupings = sorted({b.grouping for b in problem.blocks})
    if len(groupings) != 1:
        raise ModelError(
            f"adaptive quadrature (nagq={nagq}) needs one grouping factor; this model has "
            f"{len(groupings)} ({', '.join(groupings)}). Use nagq=1 (Laplace)"
        )
    if not 1 <= nagq <= MAX_NODES:
        raise ModelError(f"nagq must be between 1 and {MAX_NODES}, got {nagq}")
    q = sum(b.q for b in problem.blocks)
    if nagq**q > MAX_POINTS:
        raise ModelError(
            f"nagq={nagq} with {q} random effects per level needs {nagq**q} nodes per level; "
            f"use fewer nodes (at most {MAX_POINTS} in all) or nagq=1"
        )


def level_index(problem: NlmmProblem) -> tuple[np.ndarray, np.ndarray]:
    """(levels, q) positions in u of each level's effects, and each row's level."""
    blocks = problem.blocks
    L = blocks[0].n_levels
    idx = np.concatenate(
        [b.offset + np.arange(L)[:, None] * b.q + np.arange(b.q)[None, :] for b in blocks], axis=1
    )
    return idx, blocks[0].codes


def agq_function(obj: NlmmObjective, nagq: int) -> tuple[Any, dict[str, Any]]:
    """The jitted ``(data, extra, beta, theta, sigma, u_mode, R) -> -2 log L`` of this
    model structure and the problem's level layout ``extra``."""
    import jax.numpy as jnp

    if nagq not in obj.agq_extra:
        idx, codes = level_index(obj.problem)
        nodes, logw = hermite_grid(nagq, idx.shape[1])
        obj.agq_extra[nagq] = {
            "idx": jnp.asarray(idx),
            "codes": jnp.asarray(codes),
            "nodes": jnp.asarray(nodes),
            "logw": jnp.asarray(logw),
            "n_rows": jnp.asarray(np.bincount(codes, minlength=idx.shape[0]) * 1.0),
        }
    return _compiled(obj.kernels), obj.agq_extra[nagq]


@lru_cache(maxsize=64)
def _compiled(kern: Kernels) -> Any:
    import jax
    import jax.numpy as jnp
    from jax.scipy.linalg import solve_triangular
    from jax.scipy.special import logsumexp

    def dev(data: Any, extra: Any, beta: Any, theta: Any, sigma: Any, u_hat: Any, R: Any) -> Any:
        idx, codes, nodes, logw = extra["idx"], extra["codes"], extra["nodes"], extra["logw"]
        L, q = idx.shape
        base = jnp.einsum("knp,p->nk", data["X"], beta)
        ZL = jnp.einsum("knq,qr->knr", data["Z"], kern.lam(data, theta))
        Rj = R[idx[:, :, None], idx[:, None, :]].transpose(0, 2, 1)  # upper factors (L, q, q)
        ujs = u_hat[idx]  # (L, q)
        # sigma R_j^{-1} z for every node and level: (K, L, q)
        offs = (
            jax.vmap(lambda Rl: solve_triangular(Rl, nodes.T, lower=False).T)(Rj).transpose(1, 0, 2) * sigma
        )

        def at_node(off: Any) -> Any:
            u = jnp.zeros(u_hat.shape[0]).at[idx].set(ujs + off)
            mu = kern.mean(data, base + jnp.einsum("knq,q->nk", ZL, u))
            rss = jax.ops.segment_sum((data["y"] - mu) ** 2, codes, num_segments=L)
            return rss + jnp.sum((ujs + off) ** 2, axis=1)

        pw = jax.lax.map(at_node, offs)  # (K, L)
        log_sig2 = jnp.log(2 * math.pi * sigma**2)
        terms = logw[:, None] + 0.5 * jnp.sum(nodes**2, axis=1)[:, None] + 0.5 * q * math.log(2 * math.pi)
        terms = terms - pw / (2 * sigma**2)
        logdet = jnp.sum(jnp.log(jnp.abs(jnp.diagonal(Rj, axis1=1, axis2=2))), axis=1)
        per_level = (
            logsumexp(terms, axis=0) + q * jnp.log(sigma) - logdet - 0.5 * (extra["n_rows"] + q) * log_sig2
        )
        return -2.0 * jnp.sum(per_level)

    return jax.jit(dev)
