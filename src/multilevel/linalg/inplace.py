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
    not positive definite.

    Why this is long: the right-looking tiled algorithm is one loop over the diagonal
    tiles with its three updates written out, each a BLAS call on the matrix's own memory.
    """
    if not (A.flags.f_contiguous and A.dtype == np.float64 and A.ndim == 2 and A.shape[0] == A.shape[1]):
        raise ValueError("tiled_cholesky needs a square float64 Fortran-ordered matrix")
    n = A.shape[0]
    lda, base = _i(n), A.ctypes.data
    edges = [*range(0, n, tile), n]
    t = len(edges) - 1

    def at(i: int, j: int) -> int:  # the address of entry (i, j)
        return base + 8 * (i + j * n)

    potrf, trsm, syrk, gemm = (routine(r) for r in ("dpotrf", "dtrsm", "dsyrk", "dgemm"))
    one, minus = _d(1.0), _d(-1.0)
    for k in range(t):
        k0, nk = edges[k], edges[k + 1] - edges[k]
        info = ctypes.c_int(0)
        potrf(b"L", _i(nk), at(k0, k0), lda, ctypes.byref(info))
        if info.value != 0:
            return k0 + info.value
        for i in range(k + 1, t):  # the tiles below: A_ik L_kk^-T
            i0, ni = edges[i], edges[i + 1] - edges[i]
            trsm(b"R", b"L", b"T", b"N", _i(ni), _i(nk), one, at(k0, k0), lda, at(i0, k0), lda)
        for i in range(k + 1, t):  # the trailing tiles: A_ij -= A_ik A_jk'
            i0, ni = edges[i], edges[i + 1] - edges[i]
            syrk(b"L", b"N", _i(ni), _i(nk), minus, at(i0, k0), lda, one, at(i0, i0), lda)
            for j in range(k + 1, i):
                j0, nj = edges[j], edges[j + 1] - edges[j]
                gemm(
                    b"N",
                    b"T",
                    _i(ni),
                    _i(nj),
                    _i(nk),
                    minus,
                    at(i0, k0),
                    lda,
                    at(j0, k0),
                    lda,
                    one,
                    at(i0, j0),
                    lda,
                )
    return 0
