"""Sums of cross-products, as a data pass reduces its partitions."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
import scipy.sparse as sp

from multilevel.linalg import crossprod


def _parts(k: int, n: int = 3000, seed: int = 1):
    """``k`` partitions of a three-factor design and the cross-products of all rows."""
    rng = np.random.default_rng(seed)
    levels = [60, 25, 4]
    codes = [rng.integers(0, nl, n) for nl in levels]
    one = np.broadcast_to(1.0, (n, 1))
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = rng.normal(size=n)
    edges = np.linspace(0, n, k + 1).astype(int)
    parts = [
        crossprod.scalar_crossprods([(c[a:b], one[a:b]) for c in codes], levels, X[a:b], y[a:b], None)
        for a, b in pairwise(edges)
    ]
    whole = crossprod.scalar_crossprods([(c, one) for c in codes], levels, X, y, None)
    return parts, whole


@pytest.mark.parametrize(
    "a_dense, b_dense, density",
    [(False, False, 0.1), (False, False, 0.6), (True, False, 0.1), (False, True, 0.1), (True, True, 0.3)],
)
def test_adding_blocks_stored_either_way_gives_the_dense_sum(a_dense, b_dense, density):
    a = sp.random(40, 30, density=density, format="csr", random_state=1)
    b = sp.random(40, 30, density=density, format="csr", random_state=2)
    x = a.toarray() if a_dense else a
    z = b.toarray() if b_dense else b
    got = crossprod._add(x, z)
    np.testing.assert_allclose(crossprod.as_dense(got), a.toarray() + b.toarray())
    # sparse while the sum is sparse, dense once either is or the sum fills half of it
    assert isinstance(got, np.ndarray) == (a_dense or b_dense or 2 * density >= crossprod.DENSE_SUM_SHARE)


def test_a_running_sum_of_partitions_equals_the_cross_products_of_all_rows():
    """``add_into`` (the reduction of a data pass) gives what one pass over all the rows
    gives, whether the running sum is still sparse or has turned dense."""
    parts, whole = _parts(12)
    total = parts[0]
    for i, p in enumerate(parts[1:]):  # the running sum first or second, as partitions finish
        total = crossprod.add_into(total, p) if i % 2 else crossprod.add_into(p, total)
    assert isinstance(total.A1R, np.ndarray)  # the partitions' sums fill A1R
    assert total.n == whole.n
    np.testing.assert_allclose(total.A11, whole.A11, rtol=1e-12)
    np.testing.assert_allclose(total.A1R, whole.A1R.toarray(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(total.ARR, whole.ARR, rtol=1e-12, atol=1e-10)


def test_a_non_canonical_sparse_block_is_added_with_its_duplicates():
    b = sp.csr_matrix((np.array([1.0, 2.0, 3.0]), np.array([1, 1, 0]), np.array([0, 2, 3])), shape=(2, 3))
    d = np.zeros((2, 3))
    crossprod._scatter_into(d, b)
    np.testing.assert_array_equal(d, [[0.0, 3.0, 0.0], [3.0, 0.0, 0.0]])


def test_cross_products_of_different_layouts_are_not_added():
    parts, _ = _parts(2)
    other, _ = _parts(1, n=500, seed=2)
    bad = crossprod.CrossProducts(
        layout=crossprod.layout_of([(61, 1), (25, 1), (4, 1)], 2),
        n=1,
        A11=other[0].A11,
        A1R=other[0].A1R,
        ARR=other[0].ARR,
        sum_log_weights=0.0,
    )
    with pytest.raises(ValueError, match="different layouts"):
        crossprod.add_into(parts[0], bad)
