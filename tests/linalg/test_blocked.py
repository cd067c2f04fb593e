"""The blocked Cholesky against a dense reference on random sparse designs."""

import numpy as np
import pandas as pd
import scipy.sparse as sp
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from multilevel.errors import ModelError
from multilevel.linalg.blocked import ragged_arange
from multilevel.linalg.crossprod import compute_crossprods
from multilevel.lmm.objective import LmmObjective
from multilevel.lmm.solution import conditional_variances, solve
from multilevel.model.design import build_model


@st.composite
def problems(draw):
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    n = draw(st.integers(20, 80))
    n_groupings = draw(st.integers(1, 3))
    data = {"y": rng.normal(size=n), "x": rng.normal(size=n), "z": rng.normal(size=n)}
    bars = []
    for k in range(n_groupings):
        nl = draw(st.integers(2, 8))
        data[f"g{k}"] = rng.integers(0, nl, size=n).astype(str)
        data[f"g{k}"][:2] = ["0", "1"]  # at least two levels
        expr = draw(st.sampled_from(["1", "1 + x", "0 + x", "1 + x + z"]))
        bars.append(f"({expr} | g{k})")
    formula = "y ~ x + " + " + ".join(bars)
    reml = draw(st.booleans())
    return pd.DataFrame(data), formula, reml, rng


def dense_reference(spec, design, theta, reml):
    Zs, lambdas = [], []
    for g, gd, T in zip(spec.groupings, design.groups, spec.templates(theta)):
        q = g.q
        rows = np.repeat(np.arange(design.n), q)
        cols = (gd.codes[:, None] * q + np.arange(q)).ravel()
        Zs.append(sp.csr_matrix((gd.values.ravel(), (rows, cols)), shape=(design.n, g.size)).toarray())
        lambdas.append(np.kron(np.eye(g.n_levels), T))
    Z = np.hstack(Zs)
    Lam = np.zeros((Z.shape[1],) * 2)
    s = 0
    for L in lambdas:
        Lam[s : s + L.shape[0], s : s + L.shape[0]] = L
        s += L.shape[0]
    X, y = design.X, design.y
    n, p = X.shape
    ZL = Z @ Lam
    q = Z.shape[1]
    # penalized least squares on the augmented system
    A = np.block([[ZL, X], [np.eye(q), np.zeros((q, p))]])
    rhs = np.concatenate([y, np.zeros(q)])
    sol, *_ = np.linalg.lstsq(A, rhs, rcond=None)
    r2 = float(np.sum((rhs - A @ sol) ** 2))
    Omega = ZL.T @ ZL + np.eye(q)
    ld_z = np.linalg.slogdet(Omega)[1]
    # R_X R_X' = X'X - X'ZL Omega^{-1} ZL'X
    S = X.T @ X - X.T @ ZL @ np.linalg.solve(Omega, ZL.T @ X)
    ld_x = np.linalg.slogdet(S)[1]
    nu = n - p if reml else n
    dev = ld_z + nu * (1 + np.log(2 * np.pi * r2 / nu)) + (ld_x if reml else 0.0)
    b = Lam @ sol[:q]
    sigma2 = r2 / nu
    condvar = sigma2 * Lam @ np.linalg.inv(Omega) @ Lam.T
    return dev, sol[q:], b, condvar


@settings(max_examples=40, deadline=None)
@given(problems())
def test_objective_matches_dense(problem):
    df, formula, reml, rng = problem
    try:
        spec, design = build_model(formula, df)
    except ModelError:
        assume(False)
    cp = compute_crossprods(design, [g.n_levels for g in spec.groupings])
    obj = LmmObjective(spec, cp, reml=reml)
    theta = rng.uniform(0.1, 1.5, size=spec.theta_map.size)
    offdiag = spec.theta_map.row != spec.theta_map.col
    theta[offdiag] = rng.normal(scale=0.5, size=offdiag.sum())
    dev_ref, beta_ref, b_ref, cv_ref = dense_reference(spec, design, theta, reml)
    f = obj.factor(theta)
    assert np.isclose(obj.criterion(f), dev_ref, rtol=1e-9, atol=1e-8)
    sol = solve(obj, f)
    np.testing.assert_allclose(sol.beta, beta_ref, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(np.concatenate([b.ravel() for b in sol.b]), b_ref, rtol=1e-6, atol=1e-8)
    cv = conditional_variances(obj, f, sol.sigma)
    start = 0
    for g, c in zip(spec.groupings, cv):
        for lev in range(g.n_levels):
            sl = slice(start + lev * g.q, start + (lev + 1) * g.q)
            np.testing.assert_allclose(c[lev], cv_ref[sl, sl], rtol=1e-6, atol=1e-10)
        start += g.size


def test_ragged_arange():
    assert ragged_arange(np.array([2, 0, 3])).tolist() == [0, 1, 0, 1, 2]


def test_every_schur_form_offers_the_update_protocol():
    import numpy as np
    import scipy.sparse as sp

    from multilevel.linalg.blocked import DenseSchur, PairSchur, PairStructure, SchurPattern, SchurUpdate

    rng = np.random.default_rng(0)
    A = sp.random(6, 5, density=0.5, random_state=1, format="csr")
    forms = [SchurPattern.build(A, 6, 1), DenseSchur.build(A, 6, 1)]
    pat = sp.csr_matrix((np.ones(A.nnz), A.indices, A.indptr), shape=A.shape)
    forms.append(PairSchur(PairStructure.build(pat, 5), A.toarray()))
    W = rng.uniform(size=(6, 1, 1))
    full = A.toarray().T @ (A.toarray() * W[:, 0, :])
    for form in forms:
        assert isinstance(form, SchurUpdate)
        u = form.update(W)
        got = u if form.dense else np.zeros((5, 5)).ravel()
        if not form.dense:
            got[form.targets] = u
            got = got.reshape(5, 5)
            np.testing.assert_allclose(np.triu(got), np.triu(full), atol=1e-12)
        else:
            np.testing.assert_allclose(got, full, atol=1e-12)
