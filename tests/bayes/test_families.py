"""Non-Gaussian families through the non-centred sampler: draws agree with the Laplace fit."""

import warnings

import numpy as np
import pandas as pd
import pytest

import multilevel


def _data(family):
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(12), 15)
    x = rng.normal(size=g.size)
    mu = np.exp(0.5 + 0.3 * x + rng.normal(0, 0.5, 12)[g])
    y = {
        "poisson": lambda: rng.poisson(mu),
        "negative_binomial": lambda: rng.negative_binomial(3, 3 / (3 + mu)),
        "Gamma": lambda: rng.gamma(4, mu / 4),
    }[family]()
    return pd.DataFrame({"y": y, "x": x, "g": g})


@pytest.mark.parametrize(
    ("family", "link", "dispersion"),
    [("poisson", None, None), ("negative_binomial", None, "shape"), ("Gamma", "log", "shape")],
)
def test_family_posterior_agrees_with_laplace(family, link, dispersion):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = multilevel.sample(
            "y ~ x + (1 | g)",
            _data(family),
            family=family,
            link=link,
            chains=2,
            draws=300,
            warmup=300,
            progress=False,
        )
    s = post.summary(group_effects=False)
    assert post.divergences == 0
    assert s.at["x", "mean"] == pytest.approx(post.fit.fixef["x"], abs=0.05)
    assert 0.3 < s.at["sd_g__Intercept", "mean"] < 1.2
    if dispersion:
        assert post.prior_table().at[dispersion, "prior"] == "gamma(0.01, 0.01)"
        from multilevel.bayes.mode import likelihood_estimates

        # 180 rows, vague prior: the posterior of the shape centres near its Laplace ML estimate
        ml = likelihood_estimates(post)[dispersion]
        assert s.at[dispersion, "mean"] == pytest.approx(ml, rel=0.35)
    resp = post.predict_draws(kind="response")
    assert resp.shape == (600, 180) and np.all(resp >= 0)
