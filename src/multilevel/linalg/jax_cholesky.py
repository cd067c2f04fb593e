"""A tiled Cholesky factor in JAX, in the matrix's own device memory.

The dense block of a wide crossed design is tens of gigabytes: MovieLens' all-movies
shape has an 84,432-wide block, 57 GB. One ``lax.linalg.cholesky`` call on it would
need a second buffer for the factor (114 GB of an H200's 141), and hands the solver a
matrix of 7 x 10^9 entries, past 32-bit indexing. :func:`tiled_cholesky` is the
right-looking algorithm of :func:`multilevel.linalg.inplace.tiled_cholesky` on a
device: the diagonal tiles factored by the device's solver, the panel below by a
triangular solve, the trailing matrix updated in column strips, each step an update of
the donated matrix in place. The extra memory is one panel and one strip.

On the CPU the tiles are :data:`~multilevel.linalg.inplace.TILE` wide, which keeps
OpenBLAS's threaded ``dsyrk`` (inside LAPACK's ``dpotrf``) below the width where it
crashes; on a GPU, :data:`GPU_TILE`.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
from jax import lax
from jax.scipy.linalg import solve_triangular

from .inplace import TILE

#: the widest tile of one solver call on a GPU (its square: 2.7 x 10^8 entries)
GPU_TILE = 16384


def tile_width(G: Any) -> int:
    """The tile for ``G``'s device: :data:`GPU_TILE` on a GPU, :data:`TILE` elsewhere."""
    platform = next(iter(G.devices())).platform
    return GPU_TILE if platform in ("gpu", "cuda", "rocm") else TILE


@partial(jax.jit, static_argnums=(1, 2), donate_argnums=(0,))
def _diagonal_and_panel(G: Any, k0: int, k1: int) -> Any:
    """Factor the diagonal tile ``k0:k1`` and solve the panel below it, in place."""
    Lkk = lax.linalg.cholesky(G[k0:k1, k0:k1], symmetrize_input=False)
    G = G.at[k0:k1, k0:k1].set(Lkk)
    if k1 < G.shape[0]:
        P = solve_triangular(Lkk, G[k1:, k0:k1].T, lower=True).T  # A_ik L_kk^-T
        G = G.at[k1:, k0:k1].set(P)
    return G


@partial(jax.jit, static_argnums=(1, 2, 3, 4), donate_argnums=(0,))
def _strip(G: Any, k0: int, k1: int, j0: int, j1: int) -> Any:
    """The trailing update of column strip ``j0:j1`` (rows ``j0:``) by panel ``k0:k1``."""
    P = G[j0:, k0:k1]
    return G.at[j0:, j0:j1].add(-(P @ P[: j1 - j0].T))


def tiled_cholesky(G: Any, tile: int | None = None) -> Any:
    """The lower Cholesky factor of the symmetric ``G`` (its lower triangle read; ``G``
    donated), as ``lax.linalg.cholesky(G, symmetrize_input=False)``: NaN where not
    positive definite, the upper triangle left as it was (not zeroed)."""
    tile = tile_width(G) if tile is None else tile
    m = G.shape[0]
    if m <= tile:
        return _single(G)
    edges = [*range(0, m, tile), m]
    for k in range(len(edges) - 1):
        k0, k1 = edges[k], edges[k + 1]
        G = _diagonal_and_panel(G, k0, k1)
        for j in range(k + 1, len(edges) - 1):
            G = _strip(G, k0, k1, edges[j], edges[j + 1])
    return G


@partial(jax.jit, donate_argnums=(0,))
def _single(G: Any) -> Any:
    return lax.linalg.cholesky(G, symmetrize_input=False)
