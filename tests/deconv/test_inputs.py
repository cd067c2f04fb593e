"""Input checks of the NPMLE, posterior summaries on small cases, and a property test."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multilevel.deconv import npmle, npmle_em
from multilevel.errors import DataError, ModelError


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"y": [0.0, np.nan, 1.0]}, DataError, "non-finite"),
        ({"y": [0.0, np.inf, 1.0]}, DataError, "non-finite"),
        ({"y": [1, -2, 3], "family": "poisson"}, DataError, "non-negative integer"),
        ({"y": [1, 2.5, 3], "family": "poisson"}, DataError, "non-negative integer"),
        ({"y": [0.0, 1.0, 2.0], "se": 0.0}, DataError, "se must be positive"),
        ({"y": [0.0, 1.0, 2.0], "se": [1.0, -1.0, 1.0]}, DataError, "se must be positive"),
        ({"y": [0.0, 1.0, 2.0], "se": [1.0, 1.0]}, DataError, "2 values for 3 observations"),
        ({"y": [0.0, 1.0, 2.0], "weights": [1.0, 1.0]}, DataError, "2 values for 3 observations"),
        ({"y": [0.0, 1.0, 2.0], "weights": [1.0, -1.0, 1.0]}, DataError, "non-negative"),
        ({"y": [0.0, 1.0, 2.0], "grid": 1}, ModelError, "at least 2 points"),
        ({"y": [0.0, 1.0, 2.0], "grid": [0.5]}, ModelError, "at least 2 distinct"),
        ({"y": [0.0, 1.0, 2.0], "grid": 2.5}, ModelError, "integer size"),
        ({"y": [1, 2], "family": "poisson", "grid": [-1.0, 2.0]}, ModelError, r"lie in \[0"),
        ({"y": [1, 2], "family": "binomial"}, DataError, "needs trials"),
        ({"y": [1, 5], "family": "binomial", "trials": 3}, DataError, "between 0 and trials"),
        ({"y": [1, 2], "family": "poison"}, ModelError, "did you mean 'poisson'"),
        ({"y": []}, DataError, "empty"),
        ({"y": [2.0, 2.0]}, ModelError, "all observations equal"),
        ({"y": [1, 2], "family": "binomial", "trials": 3, "grid": [0.0, 1.0]}, ModelError, "zero likelihood"),
    ],
)
def test_bad_input_says_what_is_wrong(kwargs, error, match):
    with pytest.raises(error, match=match):
        npmle(**kwargs)


def test_em_iterations_must_be_a_count():
    with pytest.raises(ModelError, match="iterations"):
        npmle_em([0.0, 1.0, 2.0], iterations=-1)


def test_two_point_prior_posteriors():
    rng = np.random.default_rng(3)
    theta = np.repeat([0.0, 3.0], [400, 100])
    fit = npmle(theta + rng.normal(size=500), grid=200)
    mean, sd = fit.posterior_mean(), fit.posterior_sd()
    assert np.all(sd >= 0) and np.all(np.isfinite(mean))
    lo, hi = fit.posterior_interval(0.9).T
    assert np.all(lo <= hi)
    atoms = fit.support[:, 0]
    assert np.all(np.isin(lo, atoms)) and np.all(np.isin(hi, atoms))
    # a wide interval holds the mean: every atom with posterior mass is inside it
    wide = fit.posterior_interval(1 - 1e-13)
    assert np.all((wide[:, 0] <= mean + 1e-9) & (mean <= wide[:, 1] + 1e-9))
    assert np.all((fit.lfdr(0.0) >= 0) & (fit.lfdr(0.0) <= fit.lfdr(0.0, width=0.3) + 1e-15))
    # the fitted null atom lands near 0, not on it: a null region of half-width 0.3
    lfdr = fit.lfdr(0.0, width=0.3)
    assert np.all((lfdr >= 0) & (lfdr <= 1 + 1e-12))
    assert lfdr[:400].mean() > 0.8 > 0.3 > lfdr[400:].mean()
    assert np.all(fit.lfsr() <= 0.5 + 1e-12)
    assert np.all(fit.posterior_median() >= lo) and np.all(fit.posterior_median() <= hi)
    # predict on the data reproduces the in-sample summaries
    pred = fit.predict(fit.y[:5], 1.0)
    np.testing.assert_allclose(pred["mean"], mean[:5], rtol=1e-12)
    np.testing.assert_allclose(pred["log_marginal"], fit.log_marginal()[:5], rtol=1e-12)


def test_mixing_cdf_and_support():
    fit = npmle([0.0, 0.1, 2.0, 2.1, 5.0], grid=30)
    atoms, mass = fit.support.T
    assert fit.mixing_cdf(atoms[0]) == pytest.approx(mass[0])
    assert fit.mixing_cdf(fit.grid[-1]) == pytest.approx(1.0)
    assert fit.mixing_cdf(fit.grid[0] - 1) == 0.0
    assert np.all(np.diff(fit.mixing_cdf(fit.grid)) >= 0)
    assert mass.sum() == pytest.approx(1.0)


def test_unequal_se_weights_and_merging():
    y = np.array([0.0, 0.0, 1.0, 3.0, 3.0, 3.0])
    se = np.array([1.0, 1.0, 0.5, 2.0, 2.0, 1.0])
    fit = npmle(y, se=se, grid=40)
    merged = npmle([0.0, 1.0, 3.0, 3.0], se=[1.0, 0.5, 2.0, 1.0], weights=[2, 1, 2, 1], grid=fit.grid)
    assert fit.rows == 4
    assert fit.loglik == pytest.approx(merged.loglik, rel=1e-10)
    np.testing.assert_allclose(fit.weights, merged.weights, atol=1e-8)


def test_binomial_with_varying_trials():
    rng = np.random.default_rng(5)
    p = rng.choice([0.2, 0.7], size=300)
    trials = rng.integers(5, 30, size=300)
    fit = npmle(rng.binomial(trials, p), family="binomial", trials=trials, grid=101)
    assert fit.converged and fit.kkt_max <= 1 + 1e-9
    assert fit.grid[0] == 0.0 and fit.grid[-1] == 1.0
    assert abs(fit.posterior_mean().mean() - p.mean()) < 0.05


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.floats(-20, 20, allow_nan=False), min_size=1, max_size=25),
    st.floats(0.05, 5.0),
    st.integers(2, 60),
)
def test_random_small_gaussian_problems_reach_the_certificate(y, se, m):
    if max(y) - min(y) < 1e-6:
        y = [*y, max(y) + 1.0]
    fit = npmle(y, se=se, grid=m)
    assert fit.weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(fit.weights >= 0)
    assert fit.kkt_max <= 1 + 1e-6
    assert np.isfinite(fit.loglik)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 60), min_size=2, max_size=30), st.integers(2, 80))
def test_random_small_poisson_problems_reach_the_certificate(x, m):
    if max(x) == min(x):
        x = [*x, max(x) + 1]
    fit = npmle(x, family="poisson", grid=m)
    assert fit.weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert fit.kkt_max <= 1 + 1e-6


def test_binning_is_close_and_says_so():
    rng = np.random.default_rng(11)
    y = rng.permutation(np.repeat([0.0, 2.0], [1800, 200])) + rng.normal(size=2000)
    exact = npmle(y, grid=200)
    binned = npmle(y, grid=200, bins=True, bin_width=0.01)
    assert not exact.binned and binned.binned and binned.rows < exact.rows
    assert binned.kkt_max <= 1 + 1e-9
    # the log-likelihood reported is that of every observation, a hair below the optimum
    assert exact.loglik - 1e-6 * abs(exact.loglik) <= binned.loglik <= exact.loglik + 1e-9
    np.testing.assert_allclose(binned.posterior_mean(), exact.posterior_mean(), atol=1e-3)


def test_binning_refuses_discrete_data_and_bad_widths():
    with pytest.raises(ModelError, match="never binned"):
        npmle([1, 2, 3], family="poisson", bins=True)
    with pytest.raises(ModelError, match="bin_width"):
        npmle([0.0, 1.0, 2.0], bins=True, bin_width=0.0)


def test_many_gaussian_observations_are_binned_automatically():
    rng = np.random.default_rng(2)
    n = 300_000
    y = rng.permutation(np.repeat([0.0, 2.0], [n * 9 // 10, n // 10])) + rng.normal(size=n)
    fit = npmle(y, grid=300)
    assert fit.binned and fit.n == n and fit.rows < 20_000
    assert fit.converged and fit.kkt_max <= 1 + 1e-9
    # the two atoms come back: most mass near 0, about a tenth near 2
    atoms, mass = fit.support.T
    assert mass[np.abs(atoms) < 0.3].sum() == pytest.approx(0.9, abs=0.02)
    assert mass[np.abs(atoms - 2) < 0.3].sum() == pytest.approx(0.1, abs=0.02)
