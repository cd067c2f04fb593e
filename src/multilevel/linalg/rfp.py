"""The dense block of a wide crossed design in packed storage: half the memory.

A symmetric ``n x n`` matrix needs only one triangle, ``n (n + 1) / 2`` numbers.
LAPACK's rectangular full packed format (RFP; ``TRANSR='N'``, ``UPLO='L'``) stores
that triangle as a full ``(n + 1) x n/2`` array (``n x (n + 1)/2`` for odd ``n``) made
of the triangle's three blocks, so that level-3 BLAS still works on it: the leading
triangle ``A11`` and the block ``A21`` below it as they are, the trailing triangle
``A22`` transposed into the free corner. MovieLens' 16,034-movie block takes 1.03 GB
instead of 2.06; the 43,884-movie shape's, 7.7 GB instead of 15.4.

:class:`PackedBlock` is the block of a wide design, ``[[G_ZZ, .], [G_BZ, G_BB]]``: the
random effects' part ``G_ZZ`` in RFP (what the Schur update scatters into), and the
rows of X and y (``p + 1`` of them) dense beside it. :func:`factor_packed` factors it in
place; the factor (:class:`PackedFactor`) answers the solves, the inverse and the
entries the fit reads.

The Cholesky factor of the packed triangle is computed in tiles
(:func:`~multilevel.linalg.inplace.tiled_cholesky_at` on each half, a triangular solve
and a tiled rank-k update between them), so no BLAS call is wider than
:data:`~multilevel.linalg.inplace.TILE` (see :mod:`.inplace`); the result is LAPACK's
``dpftrf`` layout, which its RFP solve (``dtfsm``) and inverse (``dpftri``) read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.linalg import lapack

from .inplace import TILE, _d, _i, routine, tiled_cholesky_at, tiled_rank_k


def layout(n: int) -> tuple[int, int, int]:
    """``(lda, h, shift)`` of the RFP array of order ``n``: its leading dimension, the
    order of its leading triangle, and 1 for even ``n`` (that triangle starts a row down)."""
    return (n + 1, n // 2, 1) if n % 2 == 0 else (n, (n + 1) // 2, 0)


def position(r: Any, c: Any, n: int) -> Any:
    """The index in the RFP array of entry ``(r, c)``, ``r >= c``, of the lower triangle
    (NumPy arrays or integers)."""
    lda, h, shift = layout(n)
    r, c = np.asarray(r), np.asarray(c)
    return np.where(c < h, r + shift + c * lda, (c - h) + (r - h + 1 - shift) * lda)


def packed_diagonal(arf: np.ndarray, n: int) -> np.ndarray:
    i = np.arange(n)
    return arf[position(i, i, n)]


def unpack(arf: np.ndarray, n: int) -> np.ndarray:
    """The lower triangle as a dense ``(n, n)`` matrix (zeros above; small blocks, tests)."""
    a, info = lapack.dtfttr(n, arf, transr="N", uplo="L")
    if info != 0:
        raise ValueError(f"dtfttr info={info}")
    return np.tril(a)


def pack(lower: np.ndarray) -> np.ndarray:
    """The RFP array of a matrix's lower triangle."""
    arf, info = lapack.dtrttf(np.asfortranarray(lower), transr="N", uplo="L")
    if info != 0:
        raise ValueError(f"dtrttf info={info}")
    return np.ascontiguousarray(arf)


def packed_cholesky(arf: np.ndarray, n: int, tile: int = TILE) -> int:
    """The lower Cholesky factor of the packed ``arf`` (order ``n``) in place, in LAPACK's
    ``dpftrf`` layout; returns ``info`` (0, or the order of the failing leading minor)."""
    if n == 0:
        return 0
    if not (arf.dtype == np.float64 and arf.flags.c_contiguous and arf.size == n * (n + 1) // 2):
        raise ValueError("packed_cholesky needs a contiguous float64 RFP array of order n")
    lda, h, shift = layout(n)
    n2 = n - h
    base = arf.ctypes.data
    a11, a21, a22 = base + 8 * shift, base + 8 * (h + shift), base + 8 * (lda * (1 - shift))
    info = tiled_cholesky_at(a11, h, lda, upper=False, tile=tile)
    if info or n2 == 0:
        return info
    trsm = routine("dtrsm")
    for r0 in range(0, n2, tile):  # A21 L11^-T, a band of rows at a time
        nr = min(tile, n2 - r0)
        trsm(b"R", b"L", b"T", b"N", _i(nr), _i(h), _d(1.0), a11, _i(lda), a21 + 8 * r0, _i(lda))
    # A22 is kept transposed (its upper triangle): A22' -= (A21 A21')' = A21 A21'
    tiled_rank_k(a22, n2, a21, h, lda, upper=True, tile=tile)
    info = tiled_cholesky_at(a22, n2, lda, upper=True, tile=tile)
    return h + info if info else 0


@dataclass(frozen=True)
class Packed:
    """A symmetric matrix of order ``n`` given by its lower triangle in RFP (``arf``)."""

    arf: np.ndarray
    n: int

    def diagonal(self) -> np.ndarray:
        return packed_diagonal(self.arf, self.n)

    def entries(self, r: np.ndarray, c: np.ndarray) -> np.ndarray:
        """``S[r, c]`` for index arrays of any order (the symmetric matrix's entries)."""
        return self.arf[position(np.maximum(r, c), np.minimum(r, c), self.n)]

    def dense(self) -> np.ndarray:
        L = unpack(self.arf, self.n)
        return L + np.tril(L, -1).T


@dataclass
class PackedBlock:
    """The dense block of a wide design: ``zz`` the random effects' part (RFP, order
    ``mz``), ``border`` the rows of X and y (``(p + 1, m)``; their lower part is read)."""

    zz: np.ndarray
    border: np.ndarray
    mz: int

    @property
    def shape(self) -> tuple[int, int]:
        m = self.mz + self.border.shape[0]
        return (m, m)


class PackedFactor:
    """The Cholesky factor of a :class:`PackedBlock`: ``L_ZZ`` packed, the rows of X and y
    (``[L_BZ, L_BB]``) dense. Indexing rows past ``mz`` reads those rows; what reaches
    into ``L_ZZ`` unpacks it (small designs only: it is the dense block again)."""

    def __init__(self, zz: np.ndarray, border: np.ndarray, mz: int) -> None:
        self.zz, self.border, self.mz = zz, border, mz
        self.inverted = False

    @property
    def shape(self) -> tuple[int, int]:
        m = self.mz + self.border.shape[0]
        return (m, m)

    def diagonal(self) -> np.ndarray:
        mz = self.mz
        return np.concatenate([packed_diagonal(self.zz, mz), np.diagonal(self.border[:, mz:])])

    def __getitem__(self, key: Any) -> Any:
        rows, cols = key
        m, mz = self.shape[0], self.mz
        r = np.arange(m)[rows]
        if np.all(np.asarray(r) >= mz):
            return self.border[np.asarray(r) - mz, cols]
        return self.dense()[rows, cols]

    def dense(self) -> np.ndarray:
        """The whole factor as a dense lower-triangular matrix (small designs, tests)."""
        if self.inverted:
            raise ValueError("the factor's Z part has been inverted in place")
        m, mz = self.shape[0], self.mz
        out = np.zeros((m, m))
        out[:mz, :mz] = unpack(self.zz, mz)
        out[mz:, :] = np.tril(self.border, mz)
        return out

    def solve_z(self, b: np.ndarray, trans: bool = False) -> np.ndarray:
        """``x`` with ``L_ZZ x = b`` (``L_ZZ' x = b`` with ``trans``), ``b`` (mz,) or (mz, r)."""
        B = np.array(b, dtype=np.float64, order="F").reshape(self.mz, -1, order="F")
        x = lapack.dtfsm(1.0, self.zz, B, transr="N", side="L", uplo="L", trans="T" if trans else "N",
                         diag="N", overwrite_b=1)  # fmt: skip
        return x[:, 0] if np.ndim(b) == 1 else x

    def invert_z(self) -> Packed:
        """``(L_ZZ L_ZZ')^{-1}`` in RFP, written over ``L_ZZ`` (LAPACK ``dpftri``): the
        factor's Z part is spent. Raises ``LinAlgError`` if singular."""
        inv, info = lapack.dpftri(self.mz, self.zz, transr="N", uplo="L", overwrite_a=1)
        if info != 0:
            raise np.linalg.LinAlgError(f"cannot invert the packed factor (dpftri info={info})")
        self.inverted = True
        return Packed(np.asarray(inv), self.mz)


def factor_packed(block: PackedBlock) -> PackedFactor:
    """The Cholesky factor of the block, in its own memory: ``L_ZZ`` packed, then
    ``L_BZ = G_BZ L_ZZ^{-T}`` and ``L_BB`` from ``G_BB - L_BZ L_BZ'``. Raises
    ``LinAlgError`` when the block is not positive definite."""
    mz, B = block.mz, block.border
    info = packed_cholesky(block.zz, mz)
    if info:
        raise np.linalg.LinAlgError(f"dense block not positive definite (order {info})")
    f = PackedFactor(block.zz, B, mz)
    if mz:
        B[:, :mz] = f.solve_z(B[:, :mz].T).T  # L_BZ' = L_ZZ^{-1} G_ZB
    S = np.tril(B[:, mz:]) - B[:, :mz] @ B[:, :mz].T
    c, info = lapack.dpotrf(S, lower=1, clean=1)
    if info != 0:
        raise np.linalg.LinAlgError(f"dense block not positive definite (order {mz + info})")
    B[:, mz:] = c
    return f
