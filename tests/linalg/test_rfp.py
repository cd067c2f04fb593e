"""Packed (RFP) storage of the wide block: LAPACK's layout, the tiled factor, its solves,
its inverse, and the scattered update written into it."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.linalg import lapack

from multilevel.linalg import rfp
from multilevel.linalg.inplace import tiled_cholesky_at, tiled_rank_k


def _spd(n: int, seed: int) -> np.ndarray:
    A = np.random.default_rng(seed).normal(size=(n, n + 3))
    return A @ A.T


@pytest.mark.parametrize("n", [1, 2, 7, 8, 301, 302])
def test_positions_are_lapacks_rfp_layout(n):
    A = np.tril(_spd(n, n))
    arf = rfp.pack(A)
    r, c = np.tril_indices(n)
    np.testing.assert_array_equal(arf[rfp.position(r, c, n)], A[r, c])
    np.testing.assert_array_equal(rfp.unpack(arf, n), A)
    np.testing.assert_array_equal(rfp.packed_diagonal(arf, n), np.diag(A))


@pytest.mark.parametrize(("n", "tile"), [(301, 64), (302, 64), (300, 1000), (129, 16)])
def test_the_tiled_packed_cholesky_is_dpftrf(n, tile):
    A = _spd(n, 2 * n)
    arf = rfp.pack(np.tril(A))
    ref, info = lapack.dpftrf(n, arf.copy(), transr="N", uplo="L")
    assert info == 0
    assert rfp.packed_cholesky(arf, n, tile=tile) == 0
    np.testing.assert_allclose(arf, ref, rtol=1e-10, atol=1e-10)
    bad = np.eye(n)
    bad[n - 3, n - 3] = -1.0  # past the first half: the second half's tiles find it
    assert rfp.packed_cholesky(rfp.pack(bad), n, tile=tile) == n - 2


def test_tiled_blocks_at_an_address_with_a_leading_dimension():
    rng = np.random.default_rng(0)
    big = np.asfortranarray(rng.normal(size=(500, 500)))
    A = _spd(200, 1)
    big[50:250, 60:260] = A
    before = big.copy(order="F")
    at = big.ctypes.data + 8 * (50 + 60 * 500)
    assert tiled_cholesky_at(at, 200, 500, upper=True, tile=48) == 0
    U = np.triu(big[50:250, 60:260])
    np.testing.assert_allclose(U.T @ U, A, rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(np.tril(big[50:250, 60:260], -1), np.tril(A, -1))  # not touched
    big = before.copy(order="F")
    at = big.ctypes.data + 8 * (50 + 60 * 500)
    tiled_rank_k(at, 200, big.ctypes.data + 8 * (300 + 10 * 500), 130, 500, upper=False, tile=48)
    P = before[300:500, 10:140]
    np.testing.assert_allclose(np.tril(big[50:250, 60:260]), np.tril(A - P @ P.T), rtol=1e-12, atol=1e-9)


def test_the_packed_block_factor_solves_and_inverse():
    mz, p1 = 203, 3
    m = mz + p1
    A = _spd(m, 7)
    block = rfp.PackedBlock(rfp.pack(np.tril(A[:mz, :mz])), np.ascontiguousarray(np.tril(A)[mz:]), mz)
    assert block.shape == (m, m)
    f = rfp.factor_packed(block)
    L = np.linalg.cholesky(A)
    np.testing.assert_allclose(f.dense(), L, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(f.diagonal(), np.diag(L), rtol=1e-12)
    np.testing.assert_allclose(f[-1, :-1], L[-1, :-1], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(f[mz : mz + 2, mz : mz + 2], L[mz : mz + 2, mz : mz + 2], rtol=1e-10)
    np.testing.assert_allclose(f[:mz, :mz], L[:mz, :mz], rtol=1e-10, atol=1e-12)
    b = np.random.default_rng(8).normal(size=(mz, 2))
    np.testing.assert_allclose(f.solve_z(b), np.linalg.solve(L[:mz, :mz], b), rtol=1e-9)
    np.testing.assert_allclose(
        f.solve_z(b[:, 0], trans=True), np.linalg.solve(L[:mz, :mz].T, b[:, 0]), rtol=1e-9
    )
    inv = f.invert_z()
    ref = np.linalg.inv(A[:mz, :mz])
    np.testing.assert_allclose(inv.dense(), ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(inv.diagonal(), np.diag(ref), rtol=1e-9)
    r, c = np.array([0, 5, 200]), np.array([3, 5, 1])
    np.testing.assert_allclose(inv.entries(r, c), ref[r, c], rtol=1e-9)
    with pytest.raises(ValueError, match="inverted"):
        f.dense()
    bad = rfp.PackedBlock(rfp.pack(-np.eye(mz)), np.zeros((p1, m)), mz)
    with pytest.raises(np.linalg.LinAlgError, match="not positive definite"):
        rfp.factor_packed(bad)


def test_the_scatter_into_packed_storage_is_the_dense_update():
    scatter_schur = pytest.importorskip("multilevel.linalg.scatter_schur")
    rng = np.random.default_rng(3)
    n1, mz, p1 = 400, 157, 2
    m = mz + p1
    rows = np.repeat(np.arange(n1), 9)
    cols = np.concatenate([np.r_[np.sort(rng.choice(mz, 7, replace=False)), mz, mz + 1] for _ in range(n1)])
    A = sp.csr_matrix((rng.normal(size=rows.size), (rows, cols)), shape=(n1, m))
    form = scatter_schur.ScatterSchur.build(A, chunks=5)
    w, s = rng.uniform(0.1, 2, n1), rng.uniform(0.5, 1.5, m)
    U = form.update(w[:, None, None]) * s[:, None] * s[None, :]
    block = rfp.PackedBlock(np.zeros(mz * (mz + 1) // 2), np.zeros((p1, m)), mz)
    form.update_packed(w, s, block)
    np.testing.assert_allclose(rfp.unpack(block.zz, mz), np.tril(U[:mz, :mz]), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.tril(block.border, mz), np.tril(U, 0)[mz:], rtol=1e-12, atol=1e-12)
    S = _spd(mz, 4)
    q_dense = form.quadratic_forms_lower(np.asfortranarray(np.tril(S)), s)
    q_packed = form.quadratic_forms_lower(rfp.Packed(rfp.pack(np.tril(S)), mz), s)
    np.testing.assert_allclose(q_packed, q_dense, rtol=1e-12)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 90), tile=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_any_order_and_tile_give_lapacks_packed_factor(n, tile, seed):
    A = _spd(n, seed)
    arf = rfp.pack(np.tril(A))
    ref, info = lapack.dpftrf(n, arf.copy(), transr="N", uplo="L")
    assert info == 0 and rfp.packed_cholesky(arf, n, tile=tile) == 0
    np.testing.assert_allclose(arf, ref, rtol=1e-9, atol=1e-9 * np.abs(ref).max())
