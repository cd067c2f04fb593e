"""The compiled PIRLS passes against the NumPy definitions they stand in for."""

from __future__ import annotations

import numpy as np
import pytest

from multilevel.family import family_names, get_family
from multilevel.linalg.crossprod import CrossProductBuilder
from multilevel.linalg.kernels import linear_predictor, weights_pass, x_outer


def _groups(rng, n):
    a = rng.integers(0, 13, n)
    b = rng.integers(0, 5, n)
    c = rng.integers(0, 3, n)
    x = rng.normal(size=n)
    return [
        (a, np.column_stack([np.ones(n), x])),  # first block: intercept and slope
        (b, np.ones((n, 1))),
        (c, np.column_stack([np.ones(n), x])),
    ], [13, 5, 3]


@pytest.mark.parametrize("name", family_names())
def test_weights_pass_matches_numpy(name):
    rng = np.random.default_rng(4)
    n = 300
    fam = get_family(name)
    groups, nl = _groups(rng, n)
    X = np.column_stack([np.ones(n), rng.normal(size=n)])
    mu = rng.uniform(0.1, 0.9, n)
    eta = rng.normal(size=n)
    mu_eta = rng.uniform(0.2, 1.0, n)
    y = rng.uniform(0.05, 0.95, n)
    w0 = rng.uniform(0.5, 2.0, n)
    zshift = rng.normal(size=n)
    disp = 1.7
    for Xb in (X, np.zeros((n, 0))):
        builder = CrossProductBuilder(groups, nl, Xb)
        assert builder.dense
        W, A11, A1R, ARR = weights_pass(
            eta, mu, mu_eta, y, w0, zshift, fam.kernel_code, disp,
            builder.codes1, builder.v1, builder.zc, builder.zv, builder.X, x_outer(builder.X), 13,
            builder.layout.mz,
        )  # fmt: skip
        W_ref = w0 * mu_eta**2 / fam.variance(mu, disp)
        z = eta - zshift + (y - mu) / mu_eta
        ref = builder.compute(z, W_ref)
        np.testing.assert_allclose(W, W_ref, rtol=1e-13)
        np.testing.assert_allclose(A11, ref.A11, rtol=1e-11, atol=1e-11)
        np.testing.assert_allclose(A1R, ref.A1R, rtol=1e-11, atol=1e-11)
        np.testing.assert_allclose(ARR, ref.ARR, rtol=1e-11, atol=1e-10)


def test_linear_predictor():
    rng = np.random.default_rng(5)
    n = 200
    groups, nl = _groups(rng, n)
    V = np.concatenate([v for _, v in groups], axis=1)
    b = [rng.normal(size=(k, v.shape[1])) for k, (_, v) in zip(nl, groups)]
    idx, start = [], 0
    for k, (codes, v) in zip(nl, groups):
        idx.append(start + codes[:, None] * v.shape[1] + np.arange(v.shape[1]))
        start += k * v.shape[1]
    base = rng.normal(size=n)
    eta = linear_predictor(base, V, np.concatenate(idx, axis=1), np.concatenate([x.ravel() for x in b]))
    ref = base + sum(np.einsum("ij,ij->i", v, bk[codes]) for (codes, v), bk in zip(groups, b))
    np.testing.assert_allclose(eta, ref, rtol=1e-13)


@pytest.mark.parametrize(
    ("formula", "family", "link"),
    [
        ("r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)", "binomial", None),
        ("TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)", "poisson", None),
        ("cbind(incidence, size - incidence) ~ period + (1 | herd)", "binomial", "probit"),
    ],
)
def test_fits_agree_with_and_without_numba(monkeypatch, formula, family, link):
    import warnings

    import multilevel
    from multilevel.control import FitControl
    from multilevel.datasets import load_dataset

    name = "VerbAgg" if "r2" in formula else ("grouseticks" if "TICKS" in formula else "cbpp")
    data = load_dataset(name)
    fits = []
    for flag in (True, False):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            control = FitControl(compiled_kernels=flag)
            fits.append(multilevel.fit(formula, data, family=family, link=link, control=control))
    assert fits[0].problem.compiled and not fits[1].problem.compiled
    assert abs(fits[0].deviance - fits[1].deviance) < 1e-7
    np.testing.assert_allclose(fits[0].fixef, fits[1].fixef, rtol=1e-5, atol=1e-7)


def test_environment_default_for_compiled_kernels(monkeypatch):
    """``MULTILEVEL_NUMBA=0`` is a user's default; an explicit control wins over it."""
    from multilevel.control import FitControl

    monkeypatch.setenv("MULTILEVEL_NUMBA", "0")
    assert not FitControl().use_compiled_kernels
    assert FitControl(compiled_kernels=True).use_compiled_kernels
    monkeypatch.delenv("MULTILEVEL_NUMBA")
    assert FitControl().use_compiled_kernels
