"""The cross-products of a wide crossed design in compiled passes over the rows' codes.

For two scalar grouping blocks (users, then a rest of many movies) the cross-products
of ``[Z X y]`` are a few sums per level and the sparse cross-tabulation of the two
blocks. In NumPy they took a dozen bincounts with a weighted copy of the rows each and
SciPy's sparse conversion (COO, then CSR, then CSR again with the dense columns
appended), about 2 GB of transients at MovieLens' 27 million rows. Here:

* :func:`_sums` reads every row once for the per-level sums, the border and ``D'WD``;
* :func:`_bucket` counting-sorts each row's rest column and product by its first-block
  level (two arrays of the rows' length, the only transients);
* :func:`_merge` sorts each level's columns and adds its duplicates, in place (levels
  in parallel);
* :func:`_assemble` writes ``A1R`` as CSR with each level's sums of ``X`` and ``y``
  after its rest columns, sorted.

Term values and weights equal to one everywhere (intercept terms, no weights) are
passed as one-element arrays and read as constants. Numba compiles on first use and
caches on disk; this module is imported only for such designs.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, nogil=True)
def _sums(c1, c2, v1, v2, w, X, y, A11, diag, sums, border, DD, counts):  # pragma: no cover
    """Per-level sums over the rows: ``A11``, the rest's ``diag``, the first block's sums of
    ``[X y]`` (``sums``), the rest's border, ``D'WD`` and the first block's row counts."""
    n, p = X.shape
    one_v1, one_v2, one_w = v1.size == 1, v2.size == 1, w.size == 1
    for r in range(n):
        a, b = c1[r], c2[r]
        wr = w[0] if one_w else w[r]
        x1 = v1[0] if one_v1 else v1[r]
        x2 = v2[0] if one_v2 else v2[r]
        w1, w2 = wr * x1, wr * x2
        A11[a] += w1 * x1
        diag[b] += w2 * x2
        counts[a] += 1
        for j in range(p + 1):
            dj = y[r] if j == p else X[r, j]
            sums[a, j] += w1 * dj
            border[j, b] += w2 * dj
            wd = wr * dj
            for k in range(j, p + 1):
                DD[j, k] += wd * (y[r] if k == p else X[r, k])


@njit(cache=True, nogil=True)
def _bucket(c1, c2, v1, v2, w, start, cols, vals):  # pragma: no cover
    """Each row's rest column and ``w v1 v2`` at its first-block level's next place."""
    one_v1, one_v2, one_w = v1.size == 1, v2.size == 1, w.size == 1
    pos = start[:-1].copy()
    for r in range(c1.size):
        a = c1[r]
        k = pos[a]
        pos[a] = k + 1
        cols[k] = c2[r]
        vals[k] = (w[0] if one_w else w[r]) * (v1[0] if one_v1 else v1[r]) * (v2[0] if one_v2 else v2[r])


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


def _scalar_or_rows(v: np.ndarray | None) -> np.ndarray:
    """A one-element array for values that are one on every row (or absent), else the
    rows' values as a contiguous float array."""
    if v is None:
        return np.ones(1)
    a = np.asarray(v, dtype=float).reshape(-1)
    if a.size and a.strides[0] == 0 and a[0] == 1.0:  # a broadcast constant: no copy
        return np.ones(1)
    return np.ascontiguousarray(a)


def wide_pass(
    c1: np.ndarray,
    c2: np.ndarray,
    v1: np.ndarray | None,
    v2: np.ndarray | None,
    w: np.ndarray | None,
    X: np.ndarray,
    y: np.ndarray,
    n1: int,
    n2: int,
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """The cross-products of ``[Z X y]`` for two scalar blocks: ``A11`` (n1,), ``A1R`` as
    CSR arrays ``(indptr, indices, data)`` of shape ``(n1, n2 + p + 1)``, the rest's
    diagonal (n2,), its border ``(p + 1, n2)`` and ``D'WD`` ``(p + 1, p + 1)``."""
    n, p = X.shape
    index = np.int32 if n2 + p + 1 < 2**31 else np.int64
    c1 = np.asarray(c1)
    c2 = np.asarray(c2)
    args = (_scalar_or_rows(v1), _scalar_or_rows(v2), _scalar_or_rows(w))
    Xa = X if X.dtype == np.float64 else np.asarray(X, dtype=float)
    ya = np.ascontiguousarray(y, dtype=float)
    A11, diag, counts = np.zeros(n1), np.zeros(n2), np.zeros(n1, dtype=np.int64)
    sums, border, DD = np.zeros((n1, p + 1)), np.zeros((p + 1, n2)), np.zeros((p + 1, p + 1))
    _sums(c1, c2, *args, Xa, ya, A11, diag, sums, border, DD, counts)
    start = np.zeros(n1 + 1, dtype=np.int64)
    np.cumsum(counts, out=start[1:])
    cols, vals = np.empty(n, dtype=index), np.empty(n)
    _bucket(c1, c2, *args, start, cols, vals)
    unique = np.empty(n1, dtype=np.int64)
    _merge(start, cols, vals, unique)
    indptr = np.zeros(n1 + 1, dtype=np.int64)
    np.cumsum(unique + (p + 1), out=indptr[1:])
    nnz = int(indptr[-1])
    indices, data = np.empty(nnz, dtype=index), np.empty(nnz)
    _assemble(start, cols, vals, sums, n2, indptr, indices, data)
    del cols, vals
    DD = np.triu(DD) + np.triu(DD, 1).T
    return A11, (indptr, indices, data), diag, border, DD
