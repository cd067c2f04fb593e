"""The Schur update ``AR1 W A1R`` of a large crossed design, scattered from sparse ``A1R``.

When the first grouping block has scalar levels (``q1 = 1``: users) and a rest that is
wide and sparse per level (the movies a user rated), the update of the dense rest is
``sum_l w_l a_l a_l'`` over the sparse rows ``a_l`` of ``A1R``. The fixed sparse
pattern (:class:`~multilevel.linalg.blocked.SchurPattern`) would store every pair of
every level, gigabytes for MovieLens' 10^10 pairs, and the dense product
(:class:`~multilevel.linalg.blocked.DenseSchur`) needs ``A1R`` dense (12 GB there).
This form keeps ``A1R`` sparse (CSR, columns sorted) and, each evaluation, adds every
level's pairs straight into the dense ``(m, m)`` result with Numba: work proportional
to the pairs, memory the result alone. The threads split the result's rows, balanced
by the pairs each row receives, so no two write the same entry.

Numba compiles on first use and caches on disk; this module is imported only for such
designs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from numba import njit, prange


@njit(cache=True, nogil=True)
def _row_pairs(indptr: np.ndarray, indices: np.ndarray, m: int) -> np.ndarray:  # pragma: no cover
    """Pairs (i <= j) each row i of the result receives, over all levels."""
    out = np.zeros(m, dtype=np.int64)
    for lev in range(indptr.size - 1):
        end = indptr[lev + 1]
        for a in range(indptr[lev], end):
            out[indices[a]] += end - a
    return out


@njit(cache=True, nogil=True, parallel=True)
def _scatter(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    w: np.ndarray,
    s: np.ndarray,
    bounds: np.ndarray,
    out: np.ndarray,
) -> None:  # pragma: no cover
    """``out[i, j] += s_i s_j sum_l w_l a_li a_lj`` for ``i <= j`` (the upper triangle of
    C-ordered ``out``); thread chunk ``t`` owns the result's rows ``bounds[t]:bounds[t + 1]``."""
    n_levels = indptr.size - 1
    for t in prange(bounds.size - 1):
        r0, r1 = bounds[t], bounds[t + 1]
        for lev in range(n_levels):
            start, e = indptr[lev], indptr[lev + 1]
            if start == e or indices[e - 1] < r0 or indices[start] >= r1:
                continue
            lo = _first_at_least(indices, start, e, r0)  # columns sorted
            wl = w[lev]
            for a in range(lo, e):
                i = indices[a]
                if i >= r1:
                    break
                va = wl * data[a] * s[i]
                for b in range(a, e):
                    j = indices[b]
                    out[i, j] += va * data[b] * s[j]


@njit(cache=True, nogil=True, inline="always")
def _first_at_least(indices: np.ndarray, lo: int, hi: int, v: int) -> int:  # pragma: no cover
    """The first position in ``lo:hi`` of the sorted ``indices`` holding ``v`` or more."""
    while lo < hi:
        mid = (lo + hi) // 2
        if indices[mid] < v:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True, parallel=True)
def _scatter_packed(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    w: np.ndarray,
    s: np.ndarray,
    row_bounds: np.ndarray,
    col_bounds: np.ndarray,
    zz: np.ndarray,
    border: np.ndarray,
    rfp: tuple[int, int, int, int],
) -> None:  # pragma: no cover
    """The pairs ``i <= j`` added into a packed block (:mod:`multilevel.linalg.rfp`): the
    RFP lower triangle ``zz`` for ``j < mz``, ``border[j - mz, i]`` past it. RFP keeps
    the pairs with ``i < h`` row by row (entry ``(j, i)`` at ``j + shift + i lda``) and
    the others transposed (at ``(i - h) + (j - h + 1 - shift) lda``), so the first kind
    goes to threads by rows ``i`` (``row_bounds``, over ``[0, h)``) and the second by
    columns ``j`` (``col_bounds``, over ``[h, m)``): each thread then writes one
    contiguous region of memory, and no two write one entry."""
    n_levels = indptr.size - 1
    mz, lda, h, shift = rfp
    nr = row_bounds.size - 1
    for t in prange(nr + col_bounds.size - 1):
        by_row = t < nr
        c0, c1 = (
            (row_bounds[t], row_bounds[t + 1]) if by_row else (col_bounds[t - nr], col_bounds[t - nr + 1])
        )
        for lev in range(n_levels):
            start, e = indptr[lev], indptr[lev + 1]
            if start == e or indices[e - 1] < c0 or (by_row and indices[start] >= c1):
                continue
            lo = _first_at_least(indices, start, e, c0)
            if by_row:
                _pairs_by_row(indices, data, lo, e, c1, w[lev], s, zz, border, mz, lda, shift)
            else:
                lo_h = _first_at_least(indices, start, e, h)
                _pairs_by_column(indices, data, lo_h, lo, e, c1, w[lev], s, zz, border, mz, lda, h, shift)


@njit(cache=True, nogil=True, inline="always")
def _pairs_by_row(
    indices: np.ndarray,
    data: np.ndarray,
    lo: int,
    e: int,
    r1: int,
    wl: float,
    s: np.ndarray,
    flat: np.ndarray,
    border: np.ndarray,
    mz: int,
    lda: int,
    shift: int,
) -> None:  # pragma: no cover
    """One level's pairs ``i <= j``, ``i`` in ``[indices[lo], r1)``, in the packed half
    stored as it is (``i < h``): entry ``(j, i)`` at ``j + shift + i lda``, contiguous in
    ``j``; the columns of X and y (the row's last entries) go to ``border``."""
    ez = e
    while ez > lo and indices[ez - 1] >= mz:
        ez -= 1
    for a in range(lo, e):
        i = indices[a]
        if i >= r1:
            break
        va = wl * data[a] * s[i]
        base = shift + i * lda
        for b in range(a, ez):
            j = indices[b]
            flat[base + j] += va * data[b] * s[j]
        for b in range(max(a, ez), e):
            border[indices[b] - mz, i] += va * data[b] * s[indices[b]]


@njit(cache=True, nogil=True, inline="always")
def _pairs_by_column(
    indices: np.ndarray,
    data: np.ndarray,
    lo_h: int,
    lo: int,
    e: int,
    c1: int,
    wl: float,
    s: np.ndarray,
    zz: np.ndarray,
    border: np.ndarray,
    mz: int,
    lda: int,
    h: int,
    shift: int,
) -> None:  # pragma: no cover
    """One level's pairs ``h <= i <= j`` with ``j`` in ``[indices[lo], c1)``: for each
    ``j``, its ``i`` (from entry ``lo_h`` on) are one contiguous column of RFP's transposed
    half; a ``j`` of X or y goes to ``border``."""
    for b in range(lo, e):
        j = indices[b]
        if j >= c1:
            break
        vj = wl * data[b] * s[j]
        if j < mz:
            base = (j - h + 1 - shift) * lda - h
            for a in range(lo_h, b + 1):
                i = indices[a]
                zz[base + i] += data[a] * s[i] * vj
        else:
            for a in range(lo_h, b + 1):
                i = indices[a]
                border[j - mz, i] += data[a] * s[i] * vj


@njit(cache=True, nogil=True)
def _column_pairs(indptr: np.ndarray, indices: np.ndarray, m: int, h: int) -> np.ndarray:  # pragma: no cover
    """Pairs ``h <= i <= j`` each column ``j`` receives, over all levels."""
    out = np.zeros(m, dtype=np.int64)
    for lev in range(indptr.size - 1):
        start, e = indptr[lev], indptr[lev + 1]
        lo_h = _first_at_least(indices, start, e, h)
        for b in range(lo_h, e):
            out[indices[b]] += b - lo_h + 1
    return out


@njit(cache=True, nogil=True, parallel=True)
def _mirror(out: np.ndarray) -> None:  # pragma: no cover
    """The lower triangle set from the upper, in place."""
    m = out.shape[0]
    for j in prange(m):
        for i in range(j):
            out[j, i] = out[i, j]


@njit(cache=True, nogil=True, parallel=True)
def _quadratic_lower(
    indptr: np.ndarray,
    indices: np.ndarray,
    data: np.ndarray,
    S: np.ndarray,
    packed: np.ndarray,
    s: np.ndarray,
    mz: int,
    rfp: tuple[int, int, int],
) -> np.ndarray:  # pragma: no cover
    """``a_l (s S s) a_l'`` per level over the first ``mz`` columns, ``S`` symmetric and
    given by its lower triangle (LAPACK's ``dpotri``), or by ``packed``, the RFP array
    of that triangle (``dpftri``), where ``rfp = (lda, h, shift)`` has ``lda > 0``; the
    rest of ``a_l`` ignored.

    Each pair is read once from the lower triangle (``i > j`` counted twice), the
    inner loop running along the storage: down a column ``j`` of Fortran-ordered ``S``
    and of RFP's first half, along a row ``i`` of RFP's transposed half."""
    n_levels = indptr.size - 1
    out = np.zeros(n_levels)
    lda, h, shift = rfp
    if lda == 0:
        h = mz  # dense: every column is read down
    for lev in prange(n_levels):
        start, e = indptr[lev], indptr[lev + 1]
        ez = _first_at_least(indices, start, e, mz)  # the entries in the first mz columns
        eh = _first_at_least(indices, start, ez, h)
        acc = 0.0
        for b in range(start, ez):  # column j: its diagonal, then i > j down the column
            j = indices[b]
            vj = data[b] * s[j]
            if b < eh:
                base = shift + j * lda
                col = 0.0
                for a in range(b + 1, ez):
                    i = indices[a]
                    col += (packed[base + i] if lda > 0 else S[i, j]) * data[a] * s[i]
                d = packed[base + j] if lda > 0 else S[j, j]
                acc += vj * (d * vj + 2.0 * col)
            else:  # RFP's transposed half: row i holds (i, j) for h <= j <= i contiguously
                i, vi = j, vj
                base = (i - h + 1 - shift) * lda - h
                row = 0.0
                for c in range(eh, b):
                    row += packed[base + indices[c]] * data[c] * s[indices[c]]
                acc += vi * (packed[base + i] * vi + 2.0 * row)
        out[lev] = acc
    return out


def _bounds(row_pairs: np.ndarray, chunks: int) -> np.ndarray:
    """Row boundaries splitting the result into ``chunks`` of about equal pairs."""
    cum = np.cumsum(row_pairs)
    total = int(cum[-1]) if cum.size else 0
    cuts = np.searchsorted(cum, np.linspace(0, total, chunks + 1)[1:-1], side="right")
    return np.unique(np.concatenate([[0], cuts, [row_pairs.size]])).astype(np.int64)


@dataclass(frozen=True)
class ScatterSchur:
    """``AR1 W A1R`` for scalar first-block levels, added pair by pair from sparse ``A1R``
    into a dense result (see the module). Implements
    :class:`~multilevel.linalg.blocked.SchurUpdate` with ``dense = True``."""

    indptr: np.ndarray
    indices: np.ndarray
    data: np.ndarray
    m: int
    bounds: np.ndarray  # the threads' row chunks
    pairs: int
    row_pairs: np.ndarray  # the pairs (i <= j) each row i of the result receives

    @property
    def dense(self) -> bool:
        return True

    @classmethod
    def build(cls, A1R: sp.csr_matrix, chunks: int = 64) -> ScatterSchur:
        A = sp.csr_matrix(A1R)
        A.sum_duplicates()
        A.sort_indices()
        # A's own arrays (no copies: MovieLens' A1R is 27 million entries)
        indptr, indices, data = A.indptr, A.indices, np.asarray(A.data, dtype=float)
        m = int(A.shape[1])
        rp = _row_pairs(indptr, indices, m)
        return cls(indptr, indices, data, m, _bounds(rp, chunks), int(rp.sum()), rp)

    def update(self, W: np.ndarray) -> np.ndarray:
        """The whole symmetric ``(m, m)`` update for per-level weights ``W`` (n1, 1, 1)."""
        out = np.zeros((self.m, self.m))
        scatter_scaled(self, np.ascontiguousarray(W[:, 0, 0]), np.ones(self.m), out)
        _mirror(out)
        return out

    def update_packed(self, w: np.ndarray, s: np.ndarray, block: Any) -> None:
        """Add ``s_i s_j sum_l w_l a_li a_lj`` into a :class:`~multilevel.linalg.rfp.PackedBlock`."""
        from .rfp import layout

        mz = block.mz
        lda, h, shift = layout(mz)
        chunks = self.bounds.size - 1
        rows = _bounds(self.row_pairs[:h], chunks)
        cols = h + _bounds(_column_pairs(self.indptr, self.indices, self.m, h)[h:], chunks)
        w, s = np.ascontiguousarray(w), np.ascontiguousarray(s)
        ind = (self.indptr, self.indices, self.data)
        _scatter_packed(*ind, w, s, rows, cols, block.zz, block.border, (mz, lda, h, shift))

    def quadratic_forms(self, M: np.ndarray) -> np.ndarray:
        """``A_l M A_l'`` per level (n1, 1, 1) for a symmetric (m, m) matrix M."""
        return self.quadratic_forms_lower(M, np.ones(self.m))

    def quadratic_forms_lower(self, S: np.ndarray, s: np.ndarray) -> np.ndarray:
        """``A_l (s S s) A_l'`` per level (n1, 1, 1) over the first ``S.shape[0]`` columns,
        for symmetric ``S`` read from its lower triangle: the LMM gradient's term without
        a dense copy of ``S`` (LAPACK's ``dpotri`` fills only that triangle)."""
        from .rfp import Packed, layout

        s = np.ascontiguousarray(s)
        ind = (self.indptr, self.indices, self.data)
        if isinstance(S, Packed):  # the inverse in packed storage (dpftri)
            q = _quadratic_lower(*ind, np.zeros((0, 0)), S.arf, s, S.n, layout(S.n))
        else:
            q = _quadratic_lower(*ind, S, np.zeros(0), s, S.shape[0], (0, 0, 0))
        return q[:, None, None]


def scatter_scaled(form: ScatterSchur, w: np.ndarray, s: np.ndarray, out: np.ndarray) -> None:
    """``out[i, j] += s_i s_j sum_l w_l a_li a_lj`` on the upper triangle of C-ordered ``out``."""
    _scatter(
        form.indptr,
        form.indices,
        form.data,
        np.ascontiguousarray(w),
        np.ascontiguousarray(s),
        form.bounds,
        out,
    )
