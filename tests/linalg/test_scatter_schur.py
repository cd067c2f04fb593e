"""The scattered Schur update of wide sparse crossed designs equals the dense and pattern forms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import multilevel
from multilevel.linalg import blocked
from multilevel.linalg.blocked import DenseSchur, SchurPattern
from multilevel.lmm.gradient import criterion_and_gradient

scatter_schur = pytest.importorskip("multilevel.linalg.scatter_schur")


def _sparse_rows(n1: int, m: int, per_row: int, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n1), per_row)
    cols = np.concatenate([rng.choice(m, per_row, replace=False) for _ in range(n1)])
    return sp.csr_matrix((rng.normal(size=rows.size), (rows, cols)), shape=(n1, m))


def test_update_and_quadratic_forms_match_the_dense_form():
    A = _sparse_rows(300, 70, 9, 1)
    W = np.random.default_rng(2).uniform(0.1, 2.0, (300, 1, 1))
    sc = scatter_schur.ScatterSchur.build(A, chunks=7)
    dense = DenseSchur.build(A, 300, 1)
    np.testing.assert_allclose(sc.update(W), dense.update(W), rtol=1e-12, atol=1e-12)
    M = np.random.default_rng(3).normal(size=(70, 70))
    M = M + M.T
    np.testing.assert_allclose(sc.quadratic_forms(M), dense.quadratic_forms(M), rtol=1e-12, atol=1e-10)
    assert sc.pairs == int(blocked.schur_pairs(A, 1))
    # the gradient's form: a lower triangle over the first columns, scaled
    k, s = 50, np.random.default_rng(4).uniform(0.5, 1.5, 50)
    Mk = np.zeros_like(M)
    Mk[:k, :k] = M[:k, :k] * s[:, None] * s[None, :]
    lower = np.asfortranarray(np.tril(M[:k, :k]))
    np.testing.assert_allclose(
        sc.quadratic_forms_lower(lower, s), dense.quadratic_forms(Mk), rtol=1e-12, atol=1e-10
    )


def _ratings(users: int = 6000, movies: int = 400, per_user: int = 10, seed: int = 4) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    u = np.repeat(np.arange(users), per_user)
    mv = np.concatenate([rng.choice(movies, per_user, replace=False) for _ in range(users)])
    y = 3.5 + rng.normal(0, 0.4, users)[u] + rng.normal(0, 0.5, movies)[mv] + rng.normal(0, 0.8, u.size)
    return pd.DataFrame({"y": y, "user": u.astype(str), "movie": mv.astype(str)})


def test_a_wide_crossed_fit_is_the_same_with_the_scattered_update(monkeypatch):
    df = _ratings()
    f = "y ~ 1 + (1 | user) + (1 | movie)"
    ref = multilevel.fit(f, df)
    assert isinstance(ref.objective.system.pattern, SchurPattern)
    monkeypatch.setattr(blocked, "PATTERN_MAX_PAIRS", 0)
    monkeypatch.setattr(blocked, "SCATTER_COST", 0.0)
    m = multilevel.fit(f, df)
    assert isinstance(m.objective.system.pattern, scatter_schur.ScatterSchur)
    # the same criterion at the same theta; optima equal to the optimizer's tolerance
    assert m.objective(ref.theta) == pytest.approx(ref.objective(ref.theta), rel=1e-12)
    assert m.reml_criterion == pytest.approx(ref.reml_criterion, rel=1e-10)
    np.testing.assert_allclose(m.theta, ref.theta, rtol=1e-4)


def test_rest_border_indexes_as_its_dense_matrix():
    from multilevel.linalg.wide import RestBorder

    rng = np.random.default_rng(5)
    border = rng.normal(size=(2, 8))
    border[:, 6:] = border[:, 6:] + border[:, 6:].T  # X'X and X'y: symmetric
    rb = RestBorder(rng.uniform(1, 2, 6), border)
    D = rb.dense()
    idx = np.array([0, 3, 5])
    cols = np.array([6, 7])
    for key in [
        (idx, idx),
        np.ix_(idx, cols),
        (idx, 7),
        (slice(6, 8), slice(6, 8)),
        (slice(6, 8), 7),
        (7, 7),
    ]:
        np.testing.assert_array_equal(rb[key], D[key])
    with pytest.raises(multilevel.errors.ModelError, match="wide crossed design"):
        np.asarray(rb)


def test_the_wide_path_gives_the_general_fit(monkeypatch):
    from multilevel.linalg import wide

    df = _ratings(users=3000, movies=700, per_user=8, seed=6)
    f = "y ~ 1 + (1 | user) + (1 | movie)"
    ref = multilevel.fit(f, df, reml=False)
    assert isinstance(ref.objective.cp.ARR, np.ndarray)
    monkeypatch.setattr(wide, "WIDE_MIN_REST", 500)
    monkeypatch.setattr(blocked, "IN_PLACE_MIN", 100)  # the solves in the factor's memory, as a wide block's
    for forced in (False, True):  # the pattern's update, then the scattered one
        if forced:
            monkeypatch.setattr(blocked, "PATTERN_MAX_PAIRS", 0)
            monkeypatch.setattr(blocked, "SCATTER_COST", 0.0)
        m = multilevel.fit(f, df, reml=False)
        assert isinstance(m.objective.cp.ARR, wide.RestBorder)
        assert isinstance(m.objective.system.pattern, scatter_schur.ScatterSchur) == forced
        for theta in (ref.theta, ref.theta * 1.3, np.array([0.0, 0.4])):
            assert m.objective(theta) == pytest.approx(ref.objective(theta), rel=1e-11)
        for theta in (ref.theta, ref.theta * 1.3):  # the analytic gradient (the convergence check's)
            g, g_ref = (
                criterion_and_gradient(m.objective, theta)[1],
                criterion_and_gradient(ref.objective, theta)[1],
            )
            np.testing.assert_allclose(g, g_ref, rtol=1e-8, atol=1e-6)
        assert m.deviance == pytest.approx(ref.deviance, rel=1e-10)
        np.testing.assert_allclose(m.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=1e-6)
        np.testing.assert_allclose(m.fixef_se.to_numpy(), ref.fixef_se.to_numpy(), rtol=1e-5)
        np.testing.assert_allclose(
            m.ranef["movie"].to_numpy(), ref.ranef["movie"].to_numpy(), rtol=1e-4, atol=1e-6
        )
        assert m.sigma == pytest.approx(ref.sigma, rel=1e-6)


def test_conditional_variances_of_a_too_wide_design_refuse(monkeypatch):
    from multilevel.linalg import numpy_backend, wide

    monkeypatch.setattr(wide, "WIDE_MIN_REST", 500)
    m = multilevel.fit(
        "y ~ 1 + (1 | user) + (1 | movie)", _ratings(users=3000, movies=700, per_user=8, seed=6)
    )
    f = m.objective.factor(m.theta)
    assert len(numpy_backend.conditional_variances(m.objective.system, f, 1.0)) == 2
    monkeypatch.setattr(numpy_backend, "DENSE_MAX_BYTES", 1024)  # as if the block were 12 GB
    with pytest.raises(multilevel.errors.ModelError, match="conditional variances"):
        numpy_backend.conditional_variances(m.objective.system, f, 1.0)


def test_the_leading_blocks_solve_and_inverse_in_place(monkeypatch):
    """BLAS / LAPACK on the leading block of a Fortran-ordered factor through its leading
    dimension: the same numbers as NumPy on a copy, and no copy of the block; a block
    below ``IN_PLACE_MIN`` or a C-ordered factor goes through SciPy, with the same numbers."""
    from multilevel.linalg.blocked import dense_cholesky, invert_leading_block, solve_leading_lower

    rng = np.random.default_rng(0)
    m, k = 12, 8
    A = rng.normal(size=(m, m))
    LS = dense_cholesky(np.triu(A @ A.T + m * np.eye(m)).copy())
    assert LS.flags.f_contiguous
    C = np.tril(LS[:k, :k])
    b, B = rng.normal(size=k), rng.normal(size=(k, 3))
    for in_place_min, factor in ((1, LS), (1, np.ascontiguousarray(LS)), (blocked.IN_PLACE_MIN, LS)):
        monkeypatch.setattr(blocked, "IN_PLACE_MIN", in_place_min)
        x = solve_leading_lower(factor, k, b, trans=True)
        np.testing.assert_allclose(x, np.linalg.solve(C.T, b), rtol=1e-12)
        np.testing.assert_allclose(solve_leading_lower(factor, k, B), np.linalg.solve(C, B), rtol=1e-12)
    tail = LS[k:, :].copy()
    inv = invert_leading_block(LS, k)
    assert np.shares_memory(inv, LS)
    np.testing.assert_allclose(np.tril(inv), np.tril(np.linalg.inv(C @ C.T)), rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(LS[k:, :], tail)  # only the leading block is written


def _assert_same_crossprods(got, ref):
    from multilevel.linalg import crossprod, wide

    dense = got.ARR.dense() if isinstance(got.ARR, wide.RestBorder) else got.ARR
    np.testing.assert_allclose(got.A11, ref.A11, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(got.A1R.toarray(), crossprod.as_dense(ref.A1R), rtol=1e-12, atol=1e-11)
    np.testing.assert_allclose(dense, ref.ARR, rtol=1e-12, atol=1e-10)
    assert got.sum_log_weights == pytest.approx(ref.sum_log_weights, rel=1e-12)
    A = got.A1R  # each level's columns sorted and distinct, as the flags it carries say
    B = sp.csr_matrix((A.data.copy(), A.indices.copy(), A.indptr.copy()), shape=A.shape)
    B.sum_duplicates()
    np.testing.assert_array_equal(B.indices, A.indices)


@pytest.mark.parametrize("weighted", [False, True])
def test_the_compiled_wide_pass_gives_the_general_cross_products(weighted, monkeypatch):
    """Repeated pairs, term values other than one, prior weights and two covariates:
    the wide layout's compiled pass equals the general builder's dense products."""
    from multilevel.linalg import crossprod, wide

    monkeypatch.setattr(wide, "WIDE_MIN_REST", 100)  # the wide layout at a test's size
    rng = np.random.default_rng(3)
    n, n1, n2 = 5000, 300, 120
    c1, c2 = rng.integers(0, n1, n), rng.integers(0, n2, n)
    c1[:50], c2[:50] = 7, 11  # the same pair, fifty times
    v1, v2 = rng.normal(size=(n, 1)), np.ones((n, 1))
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    y = rng.normal(size=n)
    w = rng.uniform(0.5, 2.0, n) if weighted else None
    groups = [(c1, v1), (c2, np.broadcast_to(1.0, (n, 1)))]
    got = crossprod.scalar_crossprods(groups, [n1, n2], X, y, w)
    ref = crossprod.CrossProductBuilder([(c1, v1), (c2, v2)], [n1, n2], X).compute(y, w)
    assert isinstance(got.ARR, wide.RestBorder)
    _assert_same_crossprods(got, ref)


@pytest.mark.parametrize("values", ["ones", "slopes", "weighted"])
def test_the_compiled_pass_of_three_crossed_blocks_gives_the_general_cross_products(values):
    """Three and four crossed scalar blocks (the rest's own cross-tabulations dense),
    intercepts as broadcast views or term values, with and without prior weights."""
    from multilevel.linalg import crossprod

    rng = np.random.default_rng(5)
    n, levels = 4000, [250, 40, 7, 3]
    codes = [rng.integers(0, k, n) for k in levels]
    codes[1][:30], codes[2][:30] = 4, 2  # repeated pairs inside the rest too
    one = np.broadcast_to(1.0, (n, 1))
    vals = [one] * 4 if values != "slopes" else [rng.normal(size=(n, 1)) for _ in levels]
    if values == "slopes":
        vals[2] = one  # a mix of ones and values
    X = np.column_stack([np.ones(n), rng.normal(size=(n, 2))])
    y = rng.normal(size=n)
    w = rng.uniform(0.5, 2.0, n) if values == "weighted" else None
    for k in (3, 4):
        groups = list(zip(codes[:k], vals[:k]))
        got = crossprod.scalar_crossprods(groups, levels[:k], X, y, w)
        ref = crossprod.CrossProductBuilder(
            [(c, np.ascontiguousarray(v)) for c, v in groups], levels[:k], X
        ).compute(y, w)
        assert isinstance(got.ARR, np.ndarray)
        _assert_same_crossprods(got, ref)


def test_three_crossed_blocks_take_the_compiled_pass_where_a1r_is_sparse():
    from multilevel.linalg import crossprod

    assert crossprod.scalar_applies([10_000, 2_000, 100], [1, 1, 1], 4)
    assert not crossprod.scalar_applies([50, 20, 5], [1, 1, 1], 2)  # A1R small: kept dense
    assert not crossprod.scalar_applies([10_000, 2_000], [2, 1], 4)  # a vector block
    assert not crossprod.scalar_applies([10_000], [1], 4)


def test_the_compact_rest_is_refused_for_two_rest_blocks():
    from multilevel.linalg.scalar_pass import scalar_pass

    c = np.arange(4)
    with pytest.raises(ValueError, match="cross pairs"):
        scalar_pass(
            c, None, [(c, None), (c, None)], [4, 4, 4], None, np.ones((4, 1)), np.ones(4), dense_rest=False
        )
