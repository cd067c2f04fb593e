"""The tiled Cholesky factor and the in-place BLAS / LAPACK routines."""

from __future__ import annotations

import numpy as np
import pytest

from multilevel.linalg import blocked, inplace


def _spd(n: int, seed: int = 0) -> np.ndarray:
    M = np.random.default_rng(seed).normal(size=(n, n))
    return M @ M.T + n * np.eye(n)


@pytest.mark.parametrize("tile", [1, 7, 64, 100, 299, 300, 1000])
def test_the_tiled_factor_is_lapacks(tile):
    """Tiles that divide the order and tiles that do not, one tile and the whole matrix:
    the factor LAPACK gives, written over the lower triangle, the upper one untouched."""
    S = _spd(300)
    A = np.asfortranarray(S.copy())
    A[np.triu_indices(300, 1)] = 7.0  # what the upper triangle held stays
    assert inplace.tiled_cholesky(A, tile=tile) == 0
    np.testing.assert_allclose(np.tril(A), np.linalg.cholesky(S), rtol=1e-12, atol=1e-12)
    assert np.all(A[np.triu_indices(300, 1)] == 7.0)


def test_a_matrix_that_is_not_positive_definite_gives_lapacks_info():
    S = _spd(50)
    S[37, 37] = -1e6  # the leading minor of order 38 is not positive definite
    A = np.asfortranarray(S)
    assert inplace.tiled_cholesky(A, tile=16) == 38
    with pytest.raises(ValueError, match="Fortran-ordered"):
        inplace.tiled_cholesky(np.ascontiguousarray(_spd(5)))


def test_dense_cholesky_takes_tiles_past_the_tile_width(monkeypatch):
    """Past :data:`~multilevel.linalg.inplace.TILE` rows the dense block is factored in
    tiles (OpenBLAS's threaded dsyrk fails past ~16,000): the same factor, and a block
    that is not positive definite raises as before."""
    monkeypatch.setattr(blocked, "TILE", 64)
    S = _spd(200, seed=1)
    G = np.ascontiguousarray(S)  # its upper triangle is the matrix's lower one
    L = blocked.dense_cholesky(G.copy())
    assert L.flags.f_contiguous
    np.testing.assert_allclose(np.tril(L), np.linalg.cholesky(S), rtol=1e-12, atol=1e-12)
    bad = S.copy()
    bad[150, 150] = -1.0
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        blocked.dense_cholesky(np.ascontiguousarray(bad))
