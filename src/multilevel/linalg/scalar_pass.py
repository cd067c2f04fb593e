"""The cross-products of crossed scalar grouping blocks in compiled passes over the rows' codes.

For scalar grouping blocks (one random effect per level: ``(1 | user) + (1 | movie)``,
or three crossed factors) the cross-products of ``[Z X y]`` are a few sums per level,
the sparse cross-tabulation of the first block with the rest, and the rest's own
cross-tabulations. In NumPy they took a dozen bincounts with a weighted copy of the rows
each, or sparse ``Z`` products, and SciPy's sparse conversions (COO, then CSR, then CSR
again with the dense columns appended): about 2 GB of transients at MovieLens' 27
million ratings, 0.6 s per million rows of three crossed factors. Here each row's rest
columns are ``zc[row]`` (one per rest block, already offset into the rest, so
increasing along the row), and:

* :func:`_sums` reads every row once for the per-level sums, the rest's diagonal and
  cross pairs, its border and ``D'WD``;
* :func:`_bucket` counting-sorts each row's rest columns and products by its
  first-block level (two arrays of the rows' length times the rest blocks, the only
  transients);
* :func:`_merge` sorts each level's columns and adds its duplicates, in place (levels
  in parallel);
* :func:`_assemble` writes ``A1R`` as CSR with each level's sums of ``X`` and ``y``
  after its rest columns, sorted.

Term values and weights equal to one everywhere (intercept terms, no weights) are
passed as one-element arrays (the rest's values as an empty one) and read as
constants. Numba compiles on first use and caches on disk; this module is imported
only for such designs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True)
def _sums(c1, zc, v1, zv, w, X, y, A11, diag, pairs, sums, border, DD, counts):  # pragma: no cover
    """Per-level sums over the rows: ``A11``, the rest's ``diag`` and cross ``pairs``
    (upper triangle; between rest blocks, so only with two or more), the first block's
    sums of ``[X y]`` (``sums``), the rest's border, ``D'WD`` and the first block's row
    counts."""
    n, p = X.shape
    r = zc.shape[1]
    one_v1, one_zv, one_w = v1.size == 1, zv.shape[0] == 0, w.size == 1
    for i in range(n):
        a = c1[i]
        wr = w[0] if one_w else w[i]
        x1 = v1[0] if one_v1 else v1[i]
        w1 = wr * x1
        A11[a] += w1 * x1
        counts[a] += 1
        for j in range(p + 1):
            dj = y[i] if j == p else X[i, j]
            sums[a, j] += w1 * dj
            wd = wr * dj
            for k in range(j, p + 1):
                DD[j, k] += wd * (y[i] if k == p else X[i, k])
        for e in range(r):
            b = zc[i, e]
            we = wr * (1.0 if one_zv else zv[i, e])
            diag[b] += we * (1.0 if one_zv else zv[i, e])
            for j in range(p + 1):
                border[j, b] += we * (y[i] if j == p else X[i, j])
            for f in range(e + 1, r):
                pairs[b, zc[i, f]] += we * (1.0 if one_zv else zv[i, f])


@njit(cache=True, nogil=True)
def _bucket(c1, zc, v1, zv, w, start, cols, vals):  # pragma: no cover
    """Each row's rest columns and ``w v1 v`` at its first-block level's next places."""
    r = zc.shape[1]
    one_v1, one_zv, one_w = v1.size == 1, zv.shape[0] == 0, w.size == 1
    pos = start[:-1].copy()
    for i in range(c1.size):
        a = c1[i]
        k = pos[a]
        pos[a] = k + r
        base = (w[0] if one_w else w[i]) * (v1[0] if one_v1 else v1[i])
        for e in range(r):
            cols[k + e] = zc[i, e]
            vals[k + e] = base * (1.0 if one_zv else zv[i, e])


@njit(cache=True, nogil=True, parallel=True)
def _merge(start, cols, vals, unique):  # pragma: no cover
    """Each level's entries sorted by column, duplicates added, compacted to the front of
    its segment; ``unique[l]`` the distinct columns of level ``l``."""
    for lev in prange(start.size - 1):
        s, e = start[lev], start[lev + 1]
        if e - s > 1:
            seg_c = cols[s:e]
            order = np.argsort(seg_c, kind="mergesort")
            sc = seg_c[order]
            sv = vals[s:e][order]
            k = 0
            for i in range(sc.size):
                if k > 0 and sc[i] == cols[s + k - 1]:
                    vals[s + k - 1] += sv[i]
                else:
                    cols[s + k] = sc[i]
                    vals[s + k] = sv[i]
                    k += 1
            unique[lev] = k
        else:
            unique[lev] = e - s


@njit(cache=True, nogil=True, parallel=True)
def _assemble(start, cols, vals, sums, n2, indptr, indices, data):  # pragma: no cover
    """CSR rows: a level's distinct rest columns, then its ``p + 1`` sums at ``n2..``."""
    k = sums.shape[1]
    for lev in prange(start.size - 1):
        s, o = start[lev], indptr[lev]
        u = indptr[lev + 1] - o - k
        for i in range(u):
            indices[o + i] = cols[s + i]
            data[o + i] = vals[s + i]
        for j in range(k):
            indices[o + u + j] = n2 + j
            data[o + u + j] = sums[lev, j]


@njit(cache=True, nogil=True)
def scatter_csr(indptr, indices, data, out):  # pragma: no cover
    """``out[l, j] += A[l, j]`` over the stored entries of CSR ``A`` (duplicates added)."""
    for lev in range(indptr.size - 1):
        for k in range(indptr[lev], indptr[lev + 1]):
            out[lev, indices[k]] += data[k]


def _scalar_or_rows(v: np.ndarray | None) -> np.ndarray:
    """A one-element array for values that are one on every row (or absent), else the
    rows' values as a contiguous float array."""
    if _ones(v):
        return np.ones(1)
    return np.ascontiguousarray(np.asarray(v, dtype=float).reshape(-1))


def _ones(v: np.ndarray | None) -> bool:
    """Whether ``v`` is absent or a broadcast one (a read-only view of one number)."""
    if v is None:
        return True
    a = np.asarray(v).reshape(-1)
    return bool(a.size > 0 and a.strides[0] == 0 and a[0] == 1.0)


def _rest_rows(
    rest: Sequence[tuple[np.ndarray, np.ndarray | None]], n_rest: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Every row's rest columns ``(n, r)``, offset by the blocks before, and their values
    (``(n, r)``, or ``(0, r)`` when all are one)."""
    r, total = len(rest), sum(n_rest)
    index = np.int32 if total < 2**31 else np.int64
    if r == 1:  # a view of the codes where they allow
        zc = np.asarray(rest[0][0]).reshape(-1, 1)
    else:
        zc = np.empty((len(rest[0][0]), r), dtype=index)
        offset = 0
        for e, ((codes, _), nl) in enumerate(zip(rest, n_rest)):
            np.add(codes, offset, out=zc[:, e], casting="unsafe")
            offset += nl
    if all(_ones(v) for _, v in rest):
        return zc, np.empty((0, r))
    zv = np.empty((zc.shape[0], r))
    for e, (_, v) in enumerate(rest):
        zv[:, e] = 1.0 if v is None else np.asarray(v, dtype=float).reshape(-1)
    return zc, zv


def _mirror_blocks(ARR: np.ndarray, n_rest: list[int]) -> None:
    """The rest blocks' cross pairs (above the diagonal, block ``e`` by block ``f > e``)
    copied below it: only those blocks can hold pairs."""
    edges = np.cumsum([0, *n_rest])
    for e in range(len(n_rest)):
        for f in range(e + 1, len(n_rest)):
            rows, cols = slice(edges[e], edges[e + 1]), slice(edges[f], edges[f + 1])
            ARR[cols, rows] = ARR[rows, cols].T


def scalar_pass(
    c1: np.ndarray,
    v1: np.ndarray | None,
    rest: Sequence[tuple[np.ndarray, np.ndarray | None]],
    n_levels: list[int],
    w: np.ndarray | None,
    X: np.ndarray,
    y: np.ndarray,
    *,
    dense_rest: bool = True,
) -> tuple[
    np.ndarray,
    tuple[np.ndarray, np.ndarray, np.ndarray],
    np.ndarray,
    np.ndarray,
    np.ndarray,
    np.ndarray | None,
]:
    """The cross-products of ``[Z X y]`` for scalar blocks: the first's codes and values,
    the ``rest`` blocks' (codes, values) and all the blocks' levels. Returns ``A11``
    (n1,), ``A1R`` as CSR arrays ``(indptr, indices, data)`` of shape ``(n1, mz + p + 1)``,
    the rest's diagonal (mz,), its border ``(p + 1, mz)``, ``D'WD`` ``(p + 1, p + 1)`` and,
    with ``dense_rest``, the whole dense ``ARR`` ``(m, m)`` (else None: one rest block,
    whose own cross-products are the diagonal, kept compact by the caller)."""
    if not dense_rest and len(rest) > 1:
        raise ValueError("two or more rest blocks have cross pairs: their ARR is dense")
    n, p = X.shape
    n1, n_rest = n_levels[0], list(n_levels[1:])
    mz = sum(n_rest)
    index = np.int32 if mz + p + 1 < 2**31 else np.int64
    zc, zv = _rest_rows(rest, n_rest)
    r = zc.shape[1]
    c1 = np.asarray(c1)
    a1, aw = _scalar_or_rows(v1), _scalar_or_rows(w)
    Xa = X if X.dtype == np.float64 else np.asarray(X, dtype=float)
    ya = np.ascontiguousarray(y, dtype=float)
    A11, diag, counts = np.zeros(n1), np.zeros(mz), np.zeros(n1, dtype=np.int64)
    m = mz + p + 1
    ARR = np.zeros((m, m)) if dense_rest else None
    pairs = ARR[:mz, :mz] if r > 1 and ARR is not None else np.zeros((1, 1))  # straight into ARR
    sums, border, DD = np.zeros((n1, p + 1)), np.zeros((p + 1, mz)), np.zeros((p + 1, p + 1))
    _sums(c1, zc, a1, zv, aw, Xa, ya, A11, diag, pairs, sums, border, DD, counts)
    start = np.zeros(n1 + 1, dtype=np.int64)
    np.cumsum(counts * r, out=start[1:])
    cols, vals = np.empty(n * r, dtype=index), np.empty(n * r)
    _bucket(c1, zc, a1, zv, aw, start, cols, vals)
    del zc, zv
    unique = np.empty(n1, dtype=np.int64)
    _merge(start, cols, vals, unique)
    indptr = np.zeros(n1 + 1, dtype=np.int64)
    np.cumsum(unique + (p + 1), out=indptr[1:])
    nnz = int(indptr[-1])
    indices, data = np.empty(nnz, dtype=index), np.empty(nnz)
    _assemble(start, cols, vals, sums, mz, indptr, indices, data)
    del cols, vals
    DD = np.triu(DD) + np.triu(DD, 1).T
    if ARR is not None:
        _mirror_blocks(ARR, n_rest)
        ARR[np.diag_indices(mz)] = diag
        ARR[mz:, :mz] = border
        ARR[:mz, mz:] = border.T
        ARR[mz:, mz:] = DD
    return A11, (indptr, indices, data), diag, border, DD, ARR
