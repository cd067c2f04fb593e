"""BLAS and LAPACK on blocks of a matrix in its own memory, and a tiled Cholesky factor.

SciPy's wrappers copy a non-contiguous argument first. Passed the address of a block
and the whole matrix's leading dimension, BLAS and LAPACK read and write the block in
place. :func:`routine` gives the routines of ``scipy.linalg.cython_blas`` /
``cython_lapack`` (the same library SciPy's wrappers call) as ctypes functions.

:func:`tiled_cholesky` factors a large symmetric matrix in tiles of :data:`TILE` rows.
It makes ``potrf`` calls on the diagonal tiles and ``trsm``, ``syrk`` and ``gemm`` calls
between them, with the same flops as one ``dpotrf`` and no call larger than a tile.
OpenBLAS's threaded ``dsyrk`` writes past its buffer once the result is about 16,000
wide. SciPy 1.16-1.17's OpenBLAS 0.3.30-0.3.31, on two threads on AMD EPYC, crashes
there, and its ``dpotrf`` calls that ``dsyrk`` on the trailing matrix. MovieLens'
16,034-movie block is past it. Tiles of 4,096 stay well below (calls up to 14,000 x
4,000 were checked).
"""

from __future__ import annotations

import ctypes
from functools import cache
from typing import Any

import numpy as np

#: the widest block any one BLAS / LAPACK call of :func:`tiled_cholesky` works on
TILE = 4096

_CH, _INT, _DBL, _PTR = (
    ctypes.c_char_p,
    ctypes.POINTER(ctypes.c_int),
    ctypes.POINTER(ctypes.c_double),
    ctypes.c_void_p,
)

#: ctypes argument types of the routines used here (Fortran: every argument by reference)
SIGNATURES: dict[str, tuple[Any, ...]] = {
    "dpotrf": (_CH, _INT, _PTR, _INT, _INT),
    "dpotri": (_CH, _INT, _PTR, _INT, _INT),
    "dtrsm": (_CH, _CH, _CH, _CH, _INT, _INT, _DBL, _PTR, _INT, _PTR, _INT),
    "dsyrk": (_CH, _CH, _INT, _INT, _DBL, _PTR, _INT, _DBL, _PTR, _INT),
    "dgemm": (_CH, _CH, _INT, _INT, _INT, _DBL, _PTR, _INT, _PTR, _INT, _DBL, _PTR, _INT),
}


@cache
def routine(name: str) -> Any:
    """The BLAS / LAPACK routine ``name`` (a key of :data:`SIGNATURES`) as a ctypes
    function, through Numba's helper for Cython function addresses."""
    from numba.extending import get_cython_function_address

    module = "scipy.linalg.cython_lapack" if name in ("dpotrf", "dpotri") else "scipy.linalg.cython_blas"
    return ctypes.CFUNCTYPE(None, *SIGNATURES[name])(get_cython_function_address(module, name))


def _i(v: int) -> Any:
    return ctypes.byref(ctypes.c_int(int(v)))


def _d(v: float) -> Any:
    return ctypes.byref(ctypes.c_double(float(v)))


def tiled_cholesky(A: np.ndarray, tile: int = TILE) -> int:
    """The lower Cholesky factor of the symmetric Fortran-ordered ``A`` (its lower
    triangle read), written over that triangle; the upper triangle is left as it was.
    Returns LAPACK's ``info``: 0, or the (1-based) order of the leading minor that is
    not positive definite."""
    if not (A.flags.f_contiguous and A.dtype == np.float64 and A.ndim == 2 and A.shape[0] == A.shape[1]):
        raise ValueError("tiled_cholesky needs a square float64 Fortran-ordered matrix")
    return tiled_cholesky_at(A.ctypes.data, A.shape[0], A.shape[0], upper=False, tile=tile)


def tiled_cholesky_at(base: int, n: int, lda: int, upper: bool, tile: int = TILE) -> int:
    """:func:`tiled_cholesky` of the ``n x n`` matrix at address ``base`` with leading
    dimension ``lda`` (a block of a larger array, e.g. a half of a packed matrix):
    ``A = L L'`` from the lower triangle, or ``A = U'U`` from the upper with ``upper``.

    Why this is long: the right-looking tiled algorithm is one loop over the diagonal
    tiles with its three updates written out, each a BLAS call on the matrix's own memory,
    for either triangle.
    """
    ld = _i(lda)
    edges = [*range(0, n, tile), n]
    t = len(edges) - 1

    def at(i: int, j: int) -> int:  # the address of entry (i, j)
        return base + 8 * (i + j * lda)

    potrf, trsm, syrk, gemm = (routine(r) for r in ("dpotrf", "dtrsm", "dsyrk", "dgemm"))
    one, minus = _d(1.0), _d(-1.0)
    uplo = b"U" if upper else b"L"
    for k in range(t):
        k0, nk = edges[k], edges[k + 1] - edges[k]
        info = ctypes.c_int(0)
        potrf(uplo, _i(nk), at(k0, k0), ld, ctypes.byref(info))
        if info.value != 0:
            return k0 + info.value
        for i in range(k + 1, t):  # the panel: A_ik L_kk^-T below, U_kk^-T A_ki to the right
            i0, ni = edges[i], edges[i + 1] - edges[i]
            if upper:
                trsm(b"L", b"U", b"T", b"N", _i(nk), _i(ni), one, at(k0, k0), ld, at(k0, i0), ld)
            else:
                trsm(b"R", b"L", b"T", b"N", _i(ni), _i(nk), one, at(k0, k0), ld, at(i0, k0), ld)
        for i in range(k + 1, t):  # the trailing tiles: A_ij -= A_ik A_jk' (A_ki' A_kj)
            i0, ni = edges[i], edges[i + 1] - edges[i]
            if upper:
                syrk(b"U", b"T", _i(ni), _i(nk), minus, at(k0, i0), ld, one, at(i0, i0), ld)
            else:
                syrk(b"L", b"N", _i(ni), _i(nk), minus, at(i0, k0), ld, one, at(i0, i0), ld)
            for j in range(k + 1, i):
                j0, nj = edges[j], edges[j + 1] - edges[j]
                if upper:  # the tile (j, i) above the diagonal
                    gemm(b"T", b"N", _i(nj), _i(ni), _i(nk), minus, at(k0, j0), ld, at(k0, i0), ld,
                         one, at(j0, i0), ld)  # fmt: skip
                else:
                    gemm(b"N", b"T", _i(ni), _i(nj), _i(nk), minus, at(i0, k0), ld, at(j0, k0), ld,
                         one, at(i0, j0), ld)  # fmt: skip
    return 0


def tiled_rank_k(c: int, n: int, a: int, k: int, lda: int, upper: bool, tile: int = TILE) -> None:
    """``C -= A A'`` on one triangle of the ``n x n`` matrix at address ``c`` (leading
    dimension ``lda``) for the ``n x k`` matrix at ``a`` (the same ``lda``), in tiles of
    the result and of ``k``: no ``dsyrk`` or ``dgemm`` call past a tile."""
    ld = _i(lda)
    syrk, gemm = routine("dsyrk"), routine("dgemm")
    one, minus = _d(1.0), _d(-1.0)
    edges = [*range(0, n, tile), n]
    for l0 in range(0, k, tile):
        nl = min(tile, k - l0)
        for i in range(len(edges) - 1):
            i0, ni = edges[i], edges[i + 1] - edges[i]
            ai = a + 8 * (i0 + l0 * lda)
            cii = c + 8 * (i0 + i0 * lda)
            syrk(b"U" if upper else b"L", b"N", _i(ni), _i(nl), minus, ai, ld, one, cii, ld)
            for j in range(i):
                j0, nj = edges[j], edges[j + 1] - edges[j]
                aj = a + 8 * (j0 + l0 * lda)
                if upper:  # tile (j, i): A_j A_i'
                    gemm(b"N", b"T", _i(nj), _i(ni), _i(nl), minus, aj, ld, ai, ld, one,
                         c + 8 * (j0 + i0 * lda), ld)  # fmt: skip
                else:  # tile (i, j): A_i A_j'
                    gemm(b"N", b"T", _i(ni), _i(nj), _i(nl), minus, ai, ld, aj, ld, one,
                         c + 8 * (i0 + j0 * lda), ld)  # fmt: skip
