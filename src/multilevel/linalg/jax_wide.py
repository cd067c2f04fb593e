"""The wide crossed design's factor in JAX: MovieLens on a GPU.

The NumPy factor of ``rating ~ 1 + (1 | user) + (1 | movie)``
(:mod:`~multilevel.linalg.wide`) keeps ``A1R`` sparse and scatters the Schur update
``sum_l w_l a_l a_l'`` into the dense movie block with Numba. This is the same factor
on a JAX device, in double precision: the block is formed in the device's memory each
evaluation and factored there (cuSOLVER on a GPU), and nothing of size ``n1 x m``
exists anywhere. The all-movies shape's 84,432-wide block is 57 GB, and it and its
factor fit an H200's 141 GB.

Each level's sparse row of ``A1R`` (the movies a user rated, columns sorted) is cut into
*segments* of equal length, at most :data:`SEGMENT` entries, and each pair of a level's
segments is a *tile*: its outer product ``w_l a_s a_t'`` is one scatter-add into the
block's lower triangle. Segments are padded to a few sizes (steps of ``2^(1/4)``: a
fifth more pairs on average), and the tiles of one size go to the device in batches of
about :data:`BATCH_PAIRS` pairs, one compiled loop per size. The work is the pairs,
``sum_l c_l (c_l + 1) / 2``, not ``nnz x m``.

The criterion's derivative here is by central differences (as lme4's convergence
checks): its analytic form needs the inverse of the dense block, a second 57 GB.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.sparse as sp
from jax import lax
from jax.ops import segment_sum

from .crossprod import CrossProducts, Layout
from .factor import Factor, Solution
from .jax_backend import rest_solution
from .jax_cholesky import tiled_cholesky
from .wide import RestBorder

NAME = "jax"
#: the most entries of one level in one segment
SEGMENT = 2048
#: pairs per scatter-add (a batch of tiles of one size)
BATCH_PAIRS = 2**24


@dataclass(frozen=True)
class TileGroup:
    """Tiles of one segment size on the device: segment ``k``'s columns ``idx[k]`` and
    values ``val[k]`` (padding: the segment's last column, value 0), and each tile's
    level and two segments (padding tiles: level ``n1``, whose weight is 0)."""

    idx: Any  # (segments, size) int32
    val: Any  # (segments, size)
    level: Any  # (tiles,) int32
    a: Any  # (tiles,) int32
    b: Any  # (tiles,) int32
    batch: int  # tiles per scatter-add
    triangle: bool  # a segment paired with itself: its lower triangle of pairs only


@dataclass(frozen=True)
class JaxWideSystem:
    """The cross-products of a wide design with two scalar grouping blocks, on a device."""

    layout: Layout
    a11: Any  # (n1,) the first block's diagonal
    diag: Any  # (mz,) the rest block's diagonal
    border: Any  # (p + 1, m): the rows of X and y of ARR
    A1B: Any  # (n1, p + 1): the columns of X and y of A1R
    user: Any  # (nnz,) int32: level of each entry of A1R's rest-block part
    col: Any  # (nnz,) int32: its column
    val: Any  # (nnz,)
    groups: tuple[TileGroup, ...]


def _sizes() -> np.ndarray:
    """The segment sizes: 1 to :data:`SEGMENT` in steps of ``2^(1/4)`` (padding adds a
    fifth of the pairs on average)."""
    steps = np.arange(0, 4 * np.log2(SEGMENT) + 1)
    return np.unique(np.r_[np.round(2.0 ** (steps / 4)).astype(int), SEGMENT])


def _segments(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    starts: np.ndarray,
    lengths: np.ndarray,
    size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Padded ``(len(starts), size)`` columns and values of entries ``starts + 0..lengths``."""
    off = np.arange(size)[None, :]
    pos = starts[:, None] + np.minimum(off, lengths[:, None] - 1)
    return indices[pos].astype(np.int32), np.where(off < lengths[:, None], data[pos], 0.0)


def tile_pairs(g: TileGroup) -> int:
    """The pairs one tile of group ``g`` scatters (padding included)."""
    size = int(g.idx.shape[1])
    return size * (size + 1) // 2 if g.triangle else size * size


def _group(
    idx: Any,
    val: Any,
    a: np.ndarray,
    b: np.ndarray,
    tl: np.ndarray,
    size: int,
    triangle: bool,
    n1: int,
    put: Any,
) -> TileGroup:
    """A group of tiles padded to whole batches (padding tiles: level ``n1``, weight 0)."""
    pairs = size * (size + 1) // 2 if triangle else size * size
    calls = -(-a.size // max(1, BATCH_PAIRS // pairs))
    batch = -(-a.size // calls)  # the tiles spread evenly: fewer than ``calls`` padding tiles
    pad = -a.size % batch
    a, b = np.r_[a, np.zeros(pad, int)], np.r_[b, np.zeros(pad, int)]
    tl = np.r_[tl, np.full(pad, n1)]
    as32 = lambda v: put(v.astype(np.int32))  # noqa: E731
    return TileGroup(idx, val, as32(tl), as32(a), as32(b), batch, triangle)


def tile_groups(Z: sp.csr_matrix, device: Any) -> tuple[TileGroup, ...]:
    """The tiles of the rest-block part ``Z`` (levels x mz, CSR) of ``A1R``.

    Why this is long: a level's entries are cut into segments, segments are padded to
    their size class, and each class's tiles are padded to whole batches, all vectorized.
    """
    Z = sp.csr_matrix(Z)
    Z.sort_indices()
    n1 = Z.shape[0]
    counts = np.diff(Z.indptr)
    sizes = _sizes()
    # every level's segments: as equal as can be, at most SEGMENT entries each, so that a
    # level's tiles pair segments of one size class (the class of its segment length)
    nseg = -(-counts // SEGMENT)
    seg_len = -(-counts // np.maximum(nseg, 1))
    lev = np.repeat(np.arange(n1), nseg)
    k = np.arange(lev.size) - np.repeat(np.cumsum(nseg) - nseg, nseg)
    starts = Z.indptr[lev] + k * seg_len[lev]
    lengths = np.minimum(counts[lev] - k * seg_len[lev], seg_len[lev])
    cls = np.searchsorted(sizes, seg_len[lev])
    groups = []
    for c in np.unique(cls):
        size = int(sizes[c])
        mine = np.flatnonzero(cls == c)
        idx, val = _segments(Z.indptr, Z.indices, Z.data, starts[mine], lengths[mine], size)
        # tiles: every pair (a >= b) of one level's segments (consecutive rows of ``mine``)
        first = np.r_[0, np.flatnonzero(np.diff(lev[mine])) + 1]
        per = np.diff(np.r_[first, mine.size])
        t_lev, t_a, t_b = [], [], []
        for n_s in np.unique(per):
            f = first[per == n_s]
            ia, ib = np.tril_indices(n_s)
            t_a.append((f[:, None] + ia[None, :]).ravel())
            t_b.append((f[:, None] + ib[None, :]).ravel())
            t_lev.append(np.repeat(lev[mine][f], ia.size))
        a, b, tl = np.concatenate(t_a), np.concatenate(t_b), np.concatenate(t_lev)
        put = partial(jax.device_put, device=device)
        idx_d, val_d = put(idx), put(val)
        for triangle in (True, False):  # a segment with itself, then two segments of a level
            on = (a == b) if triangle else (a != b)
            if on.any():
                groups.append(_group(idx_d, val_d, a[on], b[on], tl[on], size, triangle, n1, put))
    return tuple(groups)


def check_room(m: int, device: Any) -> None:
    """A :class:`~multilevel.errors.ModelError` where the dense ``(m, m)`` block cannot fit
    the memory JAX may use on ``device`` (known on GPUs; the factor is formed in place)."""
    from ..errors import ModelError

    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    limit = (stats or {}).get("bytes_limit")
    need = 8 * m * m
    if limit and need > limit:
        raise ModelError(
            f"the dense {m:,} x {m:,} block of this crossed design needs {need / 2**30:.1f} GiB on "
            f"{device.platform.upper()} {device.id}, where JAX may use {limit / 2**30:.1f} GiB; "
            "XLA_PYTHON_CLIENT_MEM_FRACTION (JAX's share, 0.75 by default) raises that, or fit "
            "with device='cpu'"
        )


def system(cp: CrossProducts, device: Any) -> JaxWideSystem:
    """The wide cross-products (``ARR`` a :class:`~multilevel.linalg.wide.RestBorder`,
    ``A1R`` sparse, both blocks scalar) on ``device``."""
    lay = cp.layout
    mz = lay.mz
    check_room(lay.m, device)
    A = sp.csr_matrix(cp.A1R)
    Z = A[:, :mz].tocsr()
    coo = Z.tocoo()
    rb = cp.ARR
    if not isinstance(rb, RestBorder):
        raise ValueError("the wide JAX factor needs the compact rest of a wide design (RestBorder)")
    put = partial(jax.device_put, device=device)
    return JaxWideSystem(
        layout=lay,
        a11=put(np.asarray(cp.A11)[:, 0, 0]),
        diag=put(np.asarray(rb.diag)),
        border=put(np.asarray(rb.border)),
        A1B=put(A[:, mz:].toarray()),
        user=put(coo.row.astype(np.int32)),
        col=put(coo.col.astype(np.int32)),
        val=put(coo.data),
        groups=tile_groups(Z, device),
    )


@partial(jax.jit, static_argnums=(8,))
def _start(
    t1: Any,
    t2: Any,
    a11: Any,
    diag: Any,
    border: Any,
    A1B: Any,
    ent: tuple[Any, Any, Any],
    dummy: Any,
    m: int,
) -> tuple[Any, Any, Any, Any]:
    """The block's lower triangle without the pairs, the weights of the pairs (``n1 + 1``,
    the last 0 for padding tiles), ``log det`` of the first block and its ``L1``."""
    mz = diag.shape[0]
    user, col, val = ent
    d = t1 * t1 * a11 + 1.0
    w = t1 * t1 / d
    Bw = w[:, None] * A1B
    ZB = segment_sum(val[:, None] * Bw[user], col, num_segments=mz)  # (mz, p + 1)
    G = jnp.zeros((m, m), dtype=dummy.dtype)
    ii = jnp.arange(mz)
    G = G.at[ii, ii].set(t2 * t2 * diag + 1.0)
    G = G.at[mz:, :mz].set(t2 * (border[:, :mz] - ZB.T))
    G = G.at[mz:, mz:].set(border[:, mz:] - A1B.T @ Bw)
    pair_w = jnp.concatenate([-(t2 * t2) * w, jnp.zeros(1)])
    return G, pair_w, jnp.sum(jnp.log(d)), jnp.sqrt(d)


@partial(jax.jit, static_argnums=(7, 8), donate_argnums=(0,))
def _scatter(
    G: Any, idx: Any, val: Any, level: Any, a: Any, b: Any, w: Any, batch: int, triangle: bool
) -> Any:
    """``G += w_l a_s a_t'`` on the lower triangle over a group's tiles, ``batch`` tiles
    per scatter-add. A level's columns are sorted, so segment ``a``'s pairs with a later
    segment ``b`` all fall in the lower triangle, and a segment's own do for ``i >= j``."""
    size = idx.shape[1]
    if triangle:
        ii, jj = np.tril_indices(size)
    else:
        ii, jj = np.repeat(np.arange(size), size), np.tile(np.arange(size), size)

    def body(k: Any, G: Any) -> Any:
        sl = partial(lax.dynamic_slice_in_dim, start_index=k * batch, slice_size=batch)
        ta, tb, tl = sl(a), sl(b), sl(level)
        ra, rb = idx[ta][:, ii], idx[tb][:, jj]
        v = w[tl][:, None] * val[ta][:, ii] * val[tb][:, jj]
        return G.at[ra, rb].add(v, mode="promise_in_bounds")

    return lax.fori_loop(0, a.shape[0] // batch, body, G)


@partial(jax.jit, static_argnums=(1,))
def _scalars(L: Any, mz: int) -> tuple[Any, Any, Any]:
    """``log det`` of the factor's Z and X parts, and ``r2``."""
    logd = jnp.log(jnp.diagonal(L))
    return 2.0 * jnp.sum(logd[:mz]), 2.0 * jnp.sum(logd[mz:-1]), L[-1, -1] ** 2


def form_block(system: JaxWideSystem, templates: Any) -> tuple[Any, Any, Any]:
    """The dense block to factor at the templates, formed on the device (its lower
    triangle), ``log det`` of the first block and its ``L1`` (n1,)."""
    t1, t2 = float(templates[0][0, 0]), float(templates[1][0, 0])
    ent = (system.user, system.col, system.val)
    G, w, logdet1, L1 = _start(
        t1, t2, system.a11, system.diag, system.border, system.A1B, ent, system.val[:0], system.layout.m
    )
    for g in system.groups:
        G = _scatter(G, g.idx, g.val, g.level, g.a, g.b, w, g.batch, g.triangle)
    return G, logdet1, L1


def factor(system: JaxWideSystem, templates: Any, keep: bool = True) -> Factor:
    """The blocked factor at the templates (NaN scalars where not positive definite);
    ``keep=False`` frees the dense factor on the device and keeps only its scalars."""
    lay = system.layout
    Ts = tuple(np.asarray(T, dtype=float) for T in templates)
    G, logdet1, L1 = form_block(system, Ts)
    LS = tiled_cholesky(G)  # G donated: the factor takes its memory
    logdz, logdx, r2 = _scalars(LS, lay.mz)
    return Factor(
        Ts, L1[:, None, None], LS if keep else None, float(logdet1) + float(logdz), float(logdx), float(r2)
    )


@jax.jit
def _first_block(t1: Any, t2: Any, L1: Any, x: Any, ent: tuple[Any, Any, Any], A1B: Any) -> Any:
    """``L1^{-1} T1' A1R Lt x`` (n1,)."""
    user, col, val = ent
    n1, p1 = A1B.shape
    zpart = segment_sum(val * x[:-p1][col], user, num_segments=n1)
    return t1 * (t2 * zpart + A1B @ x[-p1:]) / L1


def solve(
    system: JaxWideSystem, f: Factor, beta: Any = None, noise: tuple[Any, Any] | None = None
) -> Solution:
    """``beta`` (its estimate unless given) and ``u`` (as :func:`multilevel.linalg.jax_backend.solve`)."""
    lay = system.layout
    beta, u_rest = rest_solution(f.LS, lay.mz, lay.p, beta, None if noise is None else noise[1])
    t1, t2 = f.templates[0][0, 0], f.templates[1][0, 0]
    L1 = f.L1[:, 0, 0]
    x = jnp.concatenate([-u_rest, -beta, jnp.ones(1)])
    rhs1 = _first_block(t1, t2, L1, x, (system.user, system.col, system.val), system.A1B)
    if noise is not None:
        rhs1 = rhs1 + jnp.asarray(noise[0])[:, 0]
    u1 = (rhs1 / L1)[:, None]
    us = (u1, u_rest.reshape(-1, 1))
    return Solution(beta, us, tuple(u * T[0, 0] for u, T in zip(us, f.templates)))


def vcov_beta(system: JaxWideSystem, f: Factor, sigma: Any) -> Any:
    """``sigma^2 (L_XX L_XX')^{-1}`` (:func:`multilevel.linalg.jax_backend.vcov_beta`)."""
    from .jax_backend import vcov_beta as from_factor

    return from_factor(system, f, sigma)


def conditional_variances(system: JaxWideSystem, f: Factor, sigma: Any) -> list[Any]:
    """Diagonal blocks of ``Var(b | y)``, where the dense ``n1 x mz`` block they need fits
    (:func:`multilevel.linalg.numpy_backend.conditional_variances` says so where not)."""
    from jax.scipy.linalg import solve_triangular

    from .numpy_backend import check_conditional_variances

    lay = system.layout
    check_conditional_variances(lay)
    mz = lay.mz
    t1, t2 = f.templates[0][0, 0], f.templates[1][0, 0]
    L1 = f.L1[:, 0, 0]
    A = jnp.zeros((lay.n1, mz)).at[system.user, system.col].add(system.val)
    U = (t1 * t2) * A / L1[:, None]  # (n1, mz): L1^{-1} T1' A1Z Lambda_R
    LZ = f.LS[:mz, :mz]
    Y = solve_triangular(LZ, U.T, lower=True)  # (mz, n1)
    inv1 = (1.0 + jnp.sum(Y * Y, axis=0)) / (L1 * L1)
    LZinv = solve_triangular(LZ, jnp.eye(mz), lower=True)
    invZ = jnp.sum(LZinv * LZinv, axis=0)
    return [(sigma**2 * t1 * t1 * inv1)[:, None, None], (sigma**2 * t2 * t2 * invZ)[:, None, None]]
