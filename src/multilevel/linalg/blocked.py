"""Kernels of the NumPy blocked Cholesky (:mod:`multilevel.linalg.numpy_backend`) of
``Lambda' Z'Z Lambda + I`` bordered by ``X`` and ``y``.

The system is split as ``[[A11, A1R], [AR1, ARR]]``. ``A11`` is block diagonal
(one ``q1 x q1`` block per level of the first grouping factor), so its factor is a
batch of tiny Cholesky factors. Eliminating it updates the dense rest by
``AR1 W A1R`` with ``W = blockdiag(T W_l T')``; that update is a fixed sparse
pattern of outer products of the rows of ``A1R`` whose weights change with
theta, so it is precomputed once (:class:`SchurPattern`) and each evaluation is
one sparse matrix-vector product followed by one dense Cholesky of the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, Union, runtime_checkable

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from .inplace import TILE, routine, tiled_cholesky

if TYPE_CHECKING:
    from .scatter_schur import ScatterSchur


def ragged_arange(counts: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(c)`` for every c in ``counts``."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total, dtype=np.int64) - starts


@runtime_checkable
class SchurUpdate(Protocol):
    """What every form of the update ``AR1 W A1R`` offers the factor.

    ``update(W)`` takes the per-level Schur weights ``W`` (n1, q1, q1) and returns
    the update: the whole ``(m, m)`` matrix when ``dense``, otherwise its values at
    the flat upper-triangle positions ``targets``. :class:`DenseSchur`,
    :class:`SchurPattern` and :class:`PairSchur` implement it;
    :func:`schur_update` picks the cheaper of the first two for an ``A1R``.
    """

    @property
    def dense(self) -> bool: ...

    def update(self, W: np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True)
class SchurPattern:
    """Precomputed sparse map from per-level weights to the update ``AR1 W A1R``.

    ``values = P @ W.ravel()`` gives the update at flat positions ``targets`` of
    an ``(m, m)`` C-ordered array, upper triangle (``i <= j``) only, which is the
    lower triangle of its Fortran-ordered transpose that LAPACK factors.
    """

    P: sp.sparray | sp.spmatrix
    targets: np.ndarray
    m: int
    q1: int = 1

    @property
    def dense(self) -> bool:
        return False

    def update(self, W: np.ndarray) -> np.ndarray:
        """Values of ``AR1 W A1R`` at ``targets``."""
        return self.P @ W.ravel()

    def quadratic_forms(self, values: np.ndarray) -> np.ndarray:
        """``A1R[l] M A1R[l]'`` per level (n1, q1, q1), M symmetric given at ``targets``."""
        x = values * np.where(self.targets // self.m == self.targets % self.m, 1.0, 2.0)
        R = (self.P.T @ x).reshape(-1, self.q1, self.q1)
        return 0.5 * (R + np.swapaxes(R, 1, 2))

    @classmethod
    def build(cls, A1R: sp.csr_matrix, n1: int, q1: int) -> SchurPattern:
        m = A1R.shape[1]
        A = A1R.tocsr()
        A.sum_duplicates()
        A.sort_indices()
        # union pattern per level across its q1 rows
        level_pat = sp.csr_matrix((np.ones(A.nnz), A.indices, A.indptr), shape=A.shape)
        if q1 > 1:
            agg = sp.csr_matrix(
                (np.ones(A.shape[0]), (np.arange(A.shape[0]) // q1, np.arange(A.shape[0]))),
                shape=(n1, A.shape[0]),
            )
            level_pat = (agg @ level_pat).tocsr()
        level_pat.sum_duplicates()
        level_pat.sort_indices()
        counts = np.diff(level_pat.indptr)
        cols = level_pat.indices.astype(np.int64)
        lev_of = np.repeat(np.arange(n1), counts)
        # values of component a at the union pattern: V[a][e]
        V = np.empty((q1, cols.size))
        if q1 == 1:
            V[0] = A.data  # the level pattern is A's own pattern
        else:
            for a in range(q1):
                rows = lev_of * q1 + a
                V[a] = np.asarray(A[rows, cols]).ravel() if cols.size else np.zeros(0)
        # all pairs (e1, e2) within a level with e1 <= e2 (columns sorted, so col[e1] <= col[e2])
        level_end = level_pat.indptr[1:][lev_of]
        pair_counts = level_end - np.arange(cols.size)
        e1 = np.repeat(np.arange(cols.size), pair_counts)
        e2 = e1 + ragged_arange(pair_counts)
        flat = cols[e1] * m + cols[e2]
        lev = lev_of[e1]
        data, rows_out, cols_out = [], [], []
        for a in range(q1):
            for b in range(q1):
                data.append(V[a][e1] * V[b][e2])
                rows_out.append(flat)
                cols_out.append(lev * q1 * q1 + a * q1 + b)
        flat_all = np.concatenate(rows_out)
        if m * m <= 50_000_000:
            # dense marker instead of a sort: linear in the number of pairs
            mark = np.zeros(m * m, dtype=bool)
            mark[flat_all] = True
            targets = np.flatnonzero(mark)
            pos = np.empty(m * m, dtype=np.int64)
            pos[targets] = np.arange(targets.size)
            inverse = pos[flat_all]
        else:
            targets, inverse = np.unique(flat_all, return_inverse=True)
        if q1 == 1:
            # pairs are already grouped by level: build the CSC matrix directly, no sort
            indptr = np.zeros(n1 + 1, dtype=np.int64)
            np.cumsum(np.bincount(lev, minlength=n1), out=indptr[1:])
            index_dtype = np.int32 if max(targets.size, data[0].size) < 2**31 else np.int64
            P = sp.csc_matrix(
                (data[0], inverse.astype(index_dtype), indptr.astype(index_dtype)),
                shape=(targets.size, n1),
            )
            return cls(P=P, targets=targets, m=m, q1=1)
        else:
            P = sp.csr_matrix(
                (np.concatenate(data), (inverse, np.concatenate(cols_out))),
                shape=(targets.size, n1 * q1 * q1),
            )
            P.sum_duplicates()
        return cls(P=P, targets=targets, m=m, q1=q1)


@dataclass(frozen=True)
class DenseSchur:
    """The same update for a small or dense ``A1R``: ``sum_l A_l' W_l A_l`` by BLAS.

    Cheaper than the sparse pattern when ``n1 q1 m^2`` is small (GLMMs with a few
    fixed effects, a single grouping factor).
    """

    A: np.ndarray  # (n1, q1, m)

    @property
    def dense(self) -> bool:
        return True

    @property
    def m(self) -> int:
        return int(self.A.shape[2])

    @classmethod
    def build(cls, A1R: sp.csr_matrix | np.ndarray, n1: int, q1: int) -> DenseSchur:
        A = A1R if isinstance(A1R, np.ndarray) else A1R.toarray()
        return cls(np.asarray(A).reshape(n1, q1, A1R.shape[1]))

    def update(self, W: np.ndarray) -> np.ndarray:
        n1, q1, m = self.A.shape
        if self._rank_k(W):
            U = self.update_upper(W)
            return np.triu(U) + np.triu(U, 1).T
        if q1 == 1:
            A = self.A[:, 0, :]
            return A.T @ (A * W[:, 0, :])
        WA = W @ self.A
        return self.A.reshape(n1 * q1, m).T @ WA.reshape(n1 * q1, m)

    def _rank_k(self, W: np.ndarray) -> bool:
        """Whether the update is one ``dsyrk``: scalar levels, ``W >= 0``, large enough to
        matter and no wider than the widest ``dsyrk`` result :mod:`.inplace` trusts."""
        n1, q1, m = self.A.shape
        return q1 == 1 and n1 * m * m > 1e8 and m <= TILE and bool(np.all(W >= 0))

    def update_upper(self, W: np.ndarray) -> np.ndarray:
        """The update in the upper triangle of a C-ordered ``(m, m)`` array (the lower one
        unspecified), as :func:`dense_cholesky` reads a block: for scalar levels with
        ``W_l >= 0`` one rank-k ``dsyrk`` (half a product's flops) on ``A'`` as BLAS
        stores it, with no copy of ``A`` in Fortran order and no mirror."""
        if not self._rank_k(W):
            return self.update(W)
        from scipy.linalg import blas

        B = self.A[:, 0, :] * np.sqrt(W[:, 0, :])  # (n1, m), C order: B.T is Fortran-ordered
        U = blas.dsyrk(1.0, B.T, trans=0, lower=1)  # Fortran order, the lower triangle = B'B
        return U.T

    def quadratic_forms(self, M: np.ndarray) -> np.ndarray:
        """``A_l M A_l'`` per level for a symmetric (m, m) matrix M."""
        if self.A.shape[1] == 1:
            # one product for all levels (a batch of vector-matrix products is no BLAS-3)
            A = self.A[:, 0, :]
            return np.einsum("lj,lj->l", A @ M, A)[:, None, None]
        return self.A @ M @ np.swapaxes(self.A, 1, 2)


@dataclass(frozen=True)
class PairStructure:
    """The fixed structure of ``AR1 W A1R`` for a dense-stored but sparse ``A1R``
    with scalar first-block levels (q1 = 1), for products recomputed with new
    values (penalized IRLS): every level's pairs of nonzero columns (``i <= j``),
    as flat positions in ``A1R`` and in the ``(m, m)`` result.

    An observation-level random effect (``(1 | obs)``, the usual overdispersion
    term) puts one observation in each first-block level, so each row of ``A1R``
    has only the observation's other random effects, X and y: the pairs are a few
    dozen per level where the dense product costs ``m^2``.
    """

    i1: np.ndarray  # flat positions in A1R (n1 * m) of the pairs' first factor
    i2: np.ndarray
    lev: np.ndarray  # the level of each pair
    slot: np.ndarray  # the pair's position among the targets
    targets: np.ndarray  # flat positions (i * m + j, i <= j) in the (m, m) result
    m: int

    @property
    def size(self) -> int:
        return int(self.i1.size)

    @classmethod
    def build(cls, level_cols: sp.csr_matrix, m: int) -> PairStructure:
        """``level_cols``: (n1, m) sparse pattern of each level's nonzero columns."""
        P = level_cols.tocsr()
        P.sum_duplicates()
        P.sort_indices()
        counts = np.diff(P.indptr)
        cols = P.indices.astype(np.int64)
        lev_of = np.repeat(np.arange(P.shape[0]), counts)
        pair_counts = P.indptr[1:][lev_of] - np.arange(cols.size)
        e1 = np.repeat(np.arange(cols.size), pair_counts)
        e2 = e1 + ragged_arange(pair_counts)
        lev = lev_of[e1]
        flat = cols[e1] * m + cols[e2]
        targets, slot = np.unique(flat, return_inverse=True)
        return cls(lev * m + cols[e1], lev * m + cols[e2], lev, slot, targets, m)


@dataclass(frozen=True)
class PairSchur:
    """``AR1 W A1R`` at the targets of a :class:`PairStructure`, for one ``A1R``."""

    structure: PairStructure
    A: np.ndarray  # (n1, m) dense A1R

    @property
    def dense(self) -> bool:
        return False

    @property
    def targets(self) -> np.ndarray:
        return self.structure.targets

    def update(self, W: np.ndarray) -> np.ndarray:
        st = self.structure
        a = self.A.ravel()
        return np.bincount(
            st.slot, weights=a[st.i1] * a[st.i2] * W.ravel()[st.lev], minlength=st.targets.size
        )


def schur_update(A1R: sp.csr_matrix, n1: int, q1: int) -> SchurForm:
    """Sparse pattern, dense BLAS or scattered update, whichever is cheapest for this ``A1R``."""
    m = A1R.shape[1]
    if isinstance(A1R, np.ndarray):
        return DenseSchur.build(A1R, n1, q1)
    density = A1R.nnz / max(A1R.shape[0] * m, 1)
    if n1 * q1 * m * m <= 2e7 or (density > 0.5 and n1 * q1 * m * m <= 2e8):
        return DenseSchur.build(A1R, n1, q1)
    pairs = schur_pairs(A1R, q1)
    if pairs > PATTERN_MAX_PAIRS:
        # a large crossed design: the pattern would hold every pair of every level. Tall
        # (many rows per level pair, A1R dense enough): BLAS on dense A1R; wide and sparse
        # (MovieLens: each user rates a few of many movies): the pairs scattered
        dense_fits = n1 * q1 * m * 8 <= DENSE_MAX_BYTES
        if q1 == 1 and (not dense_fits or SCATTER_COST * pairs < n1 * m * m):
            from .scatter_schur import ScatterSchur

            return ScatterSchur.build(A1R)
        if dense_fits:
            return DenseSchur.build(A1R, n1, q1)
    return SchurPattern.build(A1R, n1, q1)


#: the sparse pattern's size limit (entries: ~12 bytes each, ~40 while it is built)
PATTERN_MAX_PAIRS = 2e7
DENSE_MAX_BYTES = 2 * 2**30  # the dense A1R the dense form may hold instead
#: a scattered pair's cost in dense-product multiply-adds (a gather and a scattered add
#: against BLAS's blocked ones)
SCATTER_COST = 30.0


def schur_pairs(A1R: sp.csr_matrix, q1: int) -> float:
    """Entries of :class:`SchurPattern`'s map (pairs of columns within each row of
    ``A1R``, times ``q1^2``): an upper bound from the rows' counts, without building it."""
    c = np.diff(A1R.indptr).astype(float)
    return float((c * (c + 1) / 2).sum()) * q1 * q1


def blockdiag_factor(A11: np.ndarray, T: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Factor ``T' A11_l T + I = L_l L_l'`` for every level l.

    Returns the batch of factors ``L`` (n1, q1, q1), the Schur weights
    ``W_l = T (L_l L_l')^{-1} T'`` and ``log det`` of the whole block.
    """
    q = T.shape[0]
    if q == 1:
        t = T[0, 0]
        d = t * t * A11[:, 0, 0] + 1.0
        L = np.sqrt(d)[:, None, None]
        W = (t * t / d)[:, None, None]
        return L, W, float(np.log(d).sum())
    M = T.T @ A11 @ T
    if q == 2:
        # closed form: cheaper than batched LAPACK calls for the common slope model
        a, b, c = M[:, 0, 0] + 1.0, M[:, 1, 0], M[:, 1, 1] + 1.0
        l11 = np.sqrt(a)
        l21 = b / l11
        l22 = np.sqrt(c - l21 * l21)
        L = np.empty_like(M)
        L[:, 0, 0], L[:, 1, 0], L[:, 1, 1], L[:, 0, 1] = l11, l21, l22, 0.0
        det = a * c - b * b
        Minv = np.empty_like(M)
        Minv[:, 0, 0], Minv[:, 1, 1] = c / det, a / det
        Minv[:, 0, 1] = Minv[:, 1, 0] = -b / det
        logdet = 2.0 * float(np.log(l11 * l22).sum())
    else:
        idx = np.arange(q)
        M[:, idx, idx] += 1.0
        L = np.linalg.cholesky(M)
        Minv = np.linalg.inv(M)
        logdet = 2.0 * float(np.log(np.diagonal(L, axis1=1, axis2=2)).sum())
    W = T @ Minv @ T.T
    return L, W, logdet


def dense_cholesky(G: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor (Fortran order) of the symmetric matrix whose lower
    triangle is the upper triangle of C-ordered ``G``; ``G`` is overwritten.

    Raises ``np.linalg.LinAlgError`` when the matrix is not positive definite.
    """
    if G.shape[0] > TILE and G.dtype == np.float64 and G.flags.c_contiguous:
        A = G.T  # Fortran order: in tiles, past the size one OpenBLAS call handles safely
        info = tiled_cholesky(A)
        c = A
    else:
        c, info = lapack.dpotrf(G.T, lower=1, overwrite_a=1, clean=0)
    if info != 0:
        raise np.linalg.LinAlgError(f"dense block not positive definite (dpotrf info={info})")
    return c


#: a leading block at least this wide is solved and inverted in the factor's memory
#: (BLAS / LAPACK with the factor's leading dimension) rather than through SciPy's
#: wrappers, which copy a non-contiguous block first (2 GB on the MovieLens shape)
IN_PLACE_MIN = 2000


def solve_leading_lower(LS: Any, k: int, b: np.ndarray, trans: bool = False) -> np.ndarray:
    """``x`` with ``C x = b`` (``C' x = b`` with ``trans``) for ``C`` the leading ``k x k``
    lower triangle of the factor ``LS``; ``b`` (k,) or (k, r). A block of
    :data:`IN_PLACE_MIN` rows and more of a float64 Fortran-ordered factor is solved by
    BLAS ``dtrsm`` on the factor's own memory (no copy of ``C``), a smaller one by SciPy."""
    import ctypes

    from .rfp import PackedFactor

    if isinstance(LS, PackedFactor) and k == LS.mz:  # packed: LAPACK's RFP solve
        return LS.solve_z(b, trans)
    if k < IN_PLACE_MIN or not (LS.flags.f_contiguous and LS.dtype == np.float64):
        from scipy.linalg import solve_triangular

        return np.asarray(solve_triangular(LS[:k, :k], b, lower=True, trans="T" if trans else "N"))
    B = np.array(b, dtype=np.float64, order="F").reshape(k, -1, order="F")
    dtrsm = routine("dtrsm")
    m, n, lda, ldb = (ctypes.c_int(v) for v in (k, B.shape[1], LS.shape[0], k))
    one = ctypes.c_double(1.0)
    dtrsm(
        b"L",
        b"L",
        b"T" if trans else b"N",
        b"N",
        ctypes.byref(m),
        ctypes.byref(n),
        ctypes.byref(one),
        LS.ctypes.data,
        ctypes.byref(lda),
        B.ctypes.data,
        ctypes.byref(ldb),
    )
    return B[:, 0] if np.ndim(b) == 1 else B


def invert_leading_block(LS: Any, k: int) -> Any:
    """The inverse of ``C C'`` for the leading ``k x k`` block ``C`` of the Fortran-ordered
    Cholesky factor ``LS``, written over that block's lower triangle (LAPACK ``dpotri``
    with the factor's leading dimension): a view, no copy of a block that may be
    gigabytes. The factor is spent. Raises ``np.linalg.LinAlgError`` if singular.

    ``LS[:k, :k]`` is not contiguous, so SciPy's wrapper would copy it; LAPACK itself
    reads a sub-block through ``lda``, which ``scipy.linalg.cython_lapack`` exposes.
    """
    import ctypes

    from .rfp import PackedFactor

    if isinstance(LS, PackedFactor) and k == LS.mz:  # packed: LAPACK's RFP inverse
        return LS.invert_z()
    if not (LS.flags.f_contiguous and LS.dtype == np.float64 and LS.ndim == 2 and k <= LS.shape[0]):
        raise ValueError("invert_leading_block needs a float64 Fortran-ordered factor")
    dpotri = routine("dpotri")
    n, lda, info = ctypes.c_int(k), ctypes.c_int(LS.shape[0]), ctypes.c_int(0)
    dpotri(b"L", ctypes.byref(n), LS.ctypes.data, ctypes.byref(lda), ctypes.byref(info))
    if info.value != 0:
        raise np.linalg.LinAlgError(f"cannot invert the dense factor (dpotri info={info.value})")
    return LS[:k, :k]


# the forms of the update (each a SchurUpdate), for signatures whose callers narrow by type;
# ScatterSchur (multilevel.linalg.scatter_schur, Numba) is a dense form too
SchurForm = Union[SchurPattern, DenseSchur, PairSchur, "ScatterSchur"]
