"""The pairwise Schur update (observation-level first blocks) against the dense one."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from multilevel.linalg.blocked import DenseSchur, PairSchur, PairStructure


def test_pairwise_update_equals_dense_update():
    rng = np.random.default_rng(3)
    n1, m = 50, 12
    A = np.zeros((n1, m))
    for lev in range(n1):  # a few nonzero columns per level, always the last three
        cols = np.concatenate([rng.choice(m - 3, 2, replace=False), np.arange(m - 3, m)])
        A[lev, cols] = rng.normal(size=cols.size)
    pattern = sp.csr_matrix((A != 0).astype(float))
    st = PairStructure.build(pattern, m)
    W = rng.uniform(0.1, 2.0, (n1, 1, 1))
    got = np.zeros(m * m)
    got[st.targets] = PairSchur(st, A).update(W)
    got = got.reshape(m, m)
    want = DenseSchur.build(A, n1, 1).update(W)
    iu = np.triu_indices(m)
    np.testing.assert_allclose(got[iu], want[iu], rtol=1e-12, atol=1e-12)
    assert st.size < n1 * m * (m + 1) / 2
