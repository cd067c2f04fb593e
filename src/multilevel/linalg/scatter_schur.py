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
            # the level's entries whose column falls in the chunk's rows (columns sorted)
            lo, hi = start, e
            while lo < hi:
                mid = (lo + hi) // 2
                if indices[mid] < r0:
                    lo = mid + 1
                else:
                    hi = mid
            wl = w[lev]
            for a in range(lo, e):
                i = indices[a]
                if i >= r1:
                    break
                va = wl * data[a] * s[i]
                for b in range(a, e):
                    j = indices[b]
                    out[i, j] += va * data[b] * s[j]


@njit(cache=True, nogil=True, parallel=True)
def _mirror(out: np.ndarray) -> None:  # pragma: no cover
    """The lower triangle set from the upper, in place."""
    m = out.shape[0]
    for j in prange(m):
        for i in range(j):
            out[j, i] = out[i, j]


@njit(cache=True, nogil=True, parallel=True)
def _quadratic_lower(
    indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, S: np.ndarray, s: np.ndarray, mz: int
) -> np.ndarray:  # pragma: no cover
    """``a_l (s S s) a_l'`` per level over the first ``mz`` columns, ``S`` symmetric and
    given by its lower triangle (LAPACK's ``dpotri``), the rest of ``a_l`` ignored."""
    n_levels = indptr.size - 1
    out = np.zeros(n_levels)
    for lev in prange(n_levels):
        start, e = indptr[lev], indptr[lev + 1]
        acc = 0.0
        for a in range(start, e):
            i = indices[a]
            if i >= mz:
                break
            row = 0.0
            for b in range(start, e):
                j = indices[b]
                if j >= mz:
                    break
                row += (S[i, j] if i >= j else S[j, i]) * s[j] * data[b]
            acc += data[a] * s[i] * row
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
        return cls(indptr, indices, data, m, _bounds(rp, chunks), int(rp.sum()))

    def update(self, W: np.ndarray) -> np.ndarray:
        """The whole symmetric ``(m, m)`` update for per-level weights ``W`` (n1, 1, 1)."""
        out = np.zeros((self.m, self.m))
        scatter_scaled(self, np.ascontiguousarray(W[:, 0, 0]), np.ones(self.m), out)
        _mirror(out)
        return out

    def quadratic_forms(self, M: np.ndarray) -> np.ndarray:
        """``A_l M A_l'`` per level (n1, 1, 1) for a symmetric (m, m) matrix M."""
        return self.quadratic_forms_lower(M, np.ones(self.m))

    def quadratic_forms_lower(self, S: np.ndarray, s: np.ndarray) -> np.ndarray:
        """``A_l (s S s) A_l'`` per level (n1, 1, 1) over the first ``S.shape[0]`` columns,
        for symmetric ``S`` read from its lower triangle: the LMM gradient's term without
        a dense copy of ``S`` (LAPACK's ``dpotri`` fills only that triangle)."""
        q = _quadratic_lower(self.indptr, self.indices, self.data, S, np.ascontiguousarray(s), S.shape[0])
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
