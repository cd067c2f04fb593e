"""Prior strings, defaults scaled to the data, and which prior each parameter gets."""

import math

import numpy as np
import numpyro.distributions as dist
import pytest
from scipy import stats

from multilevel.bayes.priors import ParamInfo, default_priors, parse_prior, resolve
from multilevel.errors import ModelError


def test_stan_strings_and_truncation_at_zero():
    assert isinstance(parse_prior("normal(0, 5)"), dist.Normal)
    hc = parse_prior("cauchy(0, 5)", positive=True)
    assert isinstance(hc, dist.HalfCauchy)
    assert float(hc.log_prob(2.0)) == pytest.approx(math.log(2 / (math.pi * 5 * (1 + 0.16))))
    ht = parse_prior("student_t(3, 0, 2.5)", positive=True)
    full = dist.StudentT(3.0, 0.0, 2.5)
    for x in (0.1, 1.0, 7.0):
        assert float(ht.log_prob(x)) == pytest.approx(float(full.log_prob(x)) + math.log(2))
    import jax

    draws = np.asarray(ht.sample(jax.random.PRNGKey(0), (20000,)))
    assert draws.min() > 0
    assert np.median(draws) == pytest.approx(2.5 * stats.t.ppf(0.75, 3), rel=0.05)  # half-t median
    # a location away from 0: a truncated normal, which integrates to 1 on (0, inf)
    tn = parse_prior("normal(1, 2)", positive=True)
    xs = np.linspace(1e-6, 40, 200001)
    dens = np.exp(np.asarray(tn.log_prob(xs)))
    assert np.sum(dens) * (xs[1] - xs[0]) == pytest.approx(1.0, abs=1e-4)
    assert isinstance(parse_prior("halfcauchy(0, 5)", positive=True), dist.HalfCauchy)
    assert isinstance(parse_prior("exponential(1)", positive=True), dist.Exponential)
    lkj = parse_prior("lkj(2)", correlation_dim=3)
    assert isinstance(lkj, dist.LKJCholesky) and lkj.dimension == 3


@pytest.mark.parametrize(
    ("text", "kw", "match"),
    [
        ("nromal(0, 1)", {}, "did you mean 'normal'"),
        ("normal 0 1", {}, "write it as a call"),
        ("normal(0)", {}, "takes 2 arguments"),
        ("normal(0, -1)", {}, "scale must be positive"),
        ("normal(0, x)", {}, "must be numbers"),
        ("lkj(2)", {}, "correlations"),
        ("normal(0, 1)", {"correlation_dim": 2}, "lkj"),
        ("uniform(-1, 1)", {"positive": True}, "below 0"),
    ],
)
def test_bad_prior_strings_name_the_problem(text, kw, match):
    with pytest.raises(ModelError, match=match):
        parse_prior(text, **kw)


PARAMS = [
    ParamInfo("Intercept", "Intercept"),
    ParamInfo("x", "b"),
    ParamInfo("z", "b"),
    ParamInfo("sd_g__Intercept", "sd", group="g"),
    ParamInfo("sd_g__x", "sd", group="g"),
    ParamInfo("cor_g", "cor", group="g", dim=2),
    ParamInfo("sd_h__Intercept", "sd", group="h"),
    ParamInfo("sigma", "sigma"),
]


def _defaults():
    rng = np.random.default_rng(1)
    X = np.column_stack([np.ones(50), rng.normal(0, 2, 50), rng.normal(0, 0.5, 50)])
    y = 10 + rng.normal(0, 4, 50)
    return default_priors(PARAMS, y=y, X=X, names=("Intercept", "x", "z"), identity_gaussian=True), y


def test_defaults_are_scaled_to_the_data():
    d, y = _defaults()
    assert d["Intercept"].text.startswith("student_t(3, ")
    assert float(d["Intercept"].dist.loc) == pytest.approx(np.median(y), rel=1e-3)
    # autoscaled slopes: 2.5 sd(y) / sd(x)
    assert float(d["x"].dist.scale) < float(d["z"].dist.scale)
    assert d["cor_g"].text == "lkj(1)"
    assert all(p.source == "default" for p in d.values())


def test_the_most_specific_user_prior_wins_and_objects_are_used_as_given():
    d, _ = _defaults()
    hn = dist.HalfNormal(3.0)
    out = resolve(
        PARAMS, {"sd": "normal(0, 1)", "sd_g": "cauchy(0, 2)", "sd_g__x": hn, "b": "normal(0, 9)"}, d
    )
    assert isinstance(out["sd_h__Intercept"].dist, dist.HalfNormal)  # class-wide
    assert isinstance(out["sd_g__Intercept"].dist, dist.HalfCauchy)  # the grouping factor's
    assert out["sd_g__x"].dist is hn  # this parameter's, the object itself
    assert float(out["x"].dist.scale) == 9.0 and float(out["z"].dist.scale) == 9.0
    assert out["Intercept"].source == "default"
    assert resolve(PARAMS, {"b_z": "normal(0, 1)"}, d)["z"].source == "user"


def test_unknown_keys_and_wrong_supports_are_errors():
    d, _ = _defaults()
    with pytest.raises(ModelError, match="Did you mean 'sd_g'"):
        resolve(PARAMS, {"sd_gg": "normal(0, 1)"}, d)
    with pytest.raises(ModelError, match="positive"):
        resolve(PARAMS, {"sigma": dist.Normal(0.0, 1.0)}, d)
    with pytest.raises(ModelError, match="LKJCholesky"):
        resolve(PARAMS, {"cor": dist.LKJCholesky(3, 1.0)}, d)
    with pytest.raises(ModelError, match="NumPyro distribution"):
        resolve(PARAMS, {"b": 3.0}, d)
