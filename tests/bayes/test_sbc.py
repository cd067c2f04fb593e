"""Simulation-based calibration (Talts et al. 2018): ranks of the true parameters among
posterior draws are uniform when the sampler draws from the right posterior.

Each replicate draws parameters from the prior, data from the model, and samples;
the compiled sampler is reused across replicates (same shapes, same priors). Small
and seeded here; ``-m slow`` runs a larger version.
"""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import multilevel

PRIORS = {"Intercept": "normal(0, 1)", "b": "normal(0, 1)", "sd": "normal(0, 1)", "sigma": "normal(0, 1)"}
N_GROUPS, N_PER = 8, 5


def _design(rng):
    g = np.repeat(np.arange(N_GROUPS), N_PER)
    x = rng.normal(size=g.size)
    return g, x


def _gaussian_replicate(rng, seed):
    g, x = _design(rng)
    c, b = rng.normal(), rng.normal()
    sd, sigma = abs(rng.normal()), abs(rng.normal())
    intercept = c - b * x.mean()  # the prior is on the intercept of the centred predictor
    y = intercept + b * x + rng.normal(0, sd, N_GROUPS)[g] + rng.normal(0, sigma, g.size)
    df = pd.DataFrame({"y": y, "x": x, "g": g})
    post = multilevel.sample(
        "y ~ x + (1 | g)", df, priors=PRIORS, chains=2, draws=200, warmup=150, seed=seed, progress=False
    )
    return {"Intercept": intercept, "x": b, "sd_g__Intercept": sd, "sigma": sigma}, post


def _binomial_replicate(rng, seed):
    g, x = _design(rng)
    c, b = rng.normal(), rng.normal()
    sd = abs(rng.normal())
    intercept = c - b * x.mean()
    eta = intercept + b * x + rng.normal(0, sd, N_GROUPS)[g]
    s = rng.binomial(10, 1 / (1 + np.exp(-eta)))
    df = pd.DataFrame({"s": s, "f": 10 - s, "x": x, "g": g})
    priors = {k: v for k, v in PRIORS.items() if k != "sigma"}
    post = multilevel.sample(
        "cbind(s, f) ~ x + (1 | g)",
        df,
        family="binomial",
        priors=priors,
        chains=2,
        draws=200,
        warmup=150,
        seed=seed,
        progress=False,
    )
    return {"Intercept": intercept, "x": b, "sd_g__Intercept": sd}, post


def _ranks(replicate, n_rep, seed, thin=4):
    rng = np.random.default_rng(seed)
    ranks: dict[str, list[int]] = {}
    for i in range(n_rep):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            truth, post = replicate(rng, seed + i)
        draws = post.draws(group_effects=False)
        for name, value in truth.items():
            d = draws[name][:, ::thin].ravel()
            ranks.setdefault(name, []).append(int(np.sum(d < value)))
    return ranks, 400 // thin


def _assert_uniform(ranks, n_draws, bins=5, alpha=1e-3):
    for name, r in ranks.items():
        counts = np.histogram(r, bins=bins, range=(0, n_draws + 1))[0]
        p = stats.chisquare(counts).pvalue
        assert p > alpha, (name, counts.tolist(), p)


def test_sbc_gaussian_marginal_sampler():
    ranks, n = _ranks(_gaussian_replicate, n_rep=100, seed=100)
    _assert_uniform(ranks, n)


def test_sbc_binomial_non_centred_sampler():
    ranks, n = _ranks(_binomial_replicate, n_rep=100, seed=200)
    _assert_uniform(ranks, n)


@pytest.mark.slow
@pytest.mark.parametrize("replicate", [_gaussian_replicate, _binomial_replicate])
def test_sbc_large(replicate):
    ranks, n = _ranks(replicate, n_rep=400, seed=300)
    _assert_uniform(ranks, n, bins=10)
