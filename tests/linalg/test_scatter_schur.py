"""The scattered Schur update of wide sparse crossed designs equals the dense and pattern forms."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import multilevel
from multilevel.linalg import blocked
from multilevel.linalg.blocked import DenseSchur, SchurPattern

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
