"""Parametric empirical Bayes against the reference rules, and the normal-normal model
against the mixed model it is (``y | se(s) ~ 1 + (1 | g)`` by ML)."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import multilevel
from multilevel.deconv.parametric import gamma_poisson, james_stein, normal_normal
from multilevel.errors import DataError, ModelError

DATA = Path(__file__).parent.parent / "data" / "deconv"


def _load(name):
    return json.loads((DATA / f"{name}.json").read_text()), pd.read_csv(DATA / f"{name}.csv")


@pytest.mark.parametrize("name", ["npmle_gauss_a_n1000", "npmle_gauss_b_n1000"])
def test_gaussian_rules_equal_the_references(name):
    ref, d = _load(name)
    r = ref["parametric_eb"]
    js = james_stein(d.y)
    assert js.params["shrink"] == pytest.approx(r["james_stein"]["shrink"], rel=1e-12)
    assert np.mean((js.posterior_mean - d.theta) ** 2) == pytest.approx(r["james_stein"]["mse"], rel=1e-12)
    for method, key in (("mom", "normal_normal_mom"), ("ml", "normal_normal_ml")):
        nn = normal_normal(d.y, 1.0, method)
        assert nn.params["tau2"] == pytest.approx(r[key]["tau2"], rel=1e-10)
        assert nn.params["mu"] == pytest.approx(r[key]["mu"], rel=1e-12)
        assert np.mean((nn.posterior_mean - d.theta) ** 2) == pytest.approx(r[key]["mse"], rel=1e-9)


def test_gamma_poisson_equals_the_reference():
    ref, d = _load("npmle_poisson_d_n50000")
    r = ref["parametric_eb"]["gamma_poisson_mom"]
    gp = gamma_poisson(d.x)
    assert gp.params["shape"] == pytest.approx(r["shape"], rel=1e-12)
    assert gp.params["rate"] == pytest.approx(r["rate"], rel=1e-12)
    assert np.mean((gp.posterior_mean - d["lambda"]) ** 2) == pytest.approx(r["mse"], rel=1e-10)


def test_normal_normal_is_the_known_se_mixed_model():
    rng = np.random.default_rng(4)
    se = rng.uniform(0.5, 2.0, 60)
    y = rng.normal(1.0, 1.5, 60) + se * rng.standard_normal(60)
    nn = normal_normal(y, se, "ml")
    d = pd.DataFrame({"y": y, "s": se, "g": np.arange(60)})
    m = multilevel.fit("y | se(s) ~ 1 + (1 | g)", d, reml=False)
    assert nn.params["tau2"] == pytest.approx(float(m.varcorr["variance"].iloc[0]), rel=1e-5)
    assert nn.params["mu"] == pytest.approx(float(m.fixef.iloc[0]), rel=1e-5)
    modes = m.ranef["g"].iloc[:, 0].to_numpy() + m.fixef.iloc[0]
    np.testing.assert_allclose(nn.posterior_mean, modes, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize(
    "call, error, needle",
    [
        (lambda: james_stein([1.0, 2.0]), DataError, "three or more"),
        (lambda: james_stein([1.0, 2.0, 3.0], sigma=-1), DataError, "sigma must be one positive"),
        (lambda: normal_normal([1.0, 2.0, 3.0], [1.0, 0.0, 1.0]), DataError, "se must be positive"),
        (lambda: normal_normal([1.0, 2.0, 3.0], method="reml"), ModelError, "method must be"),
        (lambda: gamma_poisson([1, 1, 1, 1]), ModelError, "not over-dispersed"),
        (lambda: gamma_poisson([1, -1, 2]), DataError, "whole non-negative"),
    ],
)
def test_bad_input(call, error, needle):
    with pytest.raises(error, match=needle):
        call()
