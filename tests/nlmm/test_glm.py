"""Binomial and Poisson nonlinear mixed models: the Laplace deviance against glmer-equal
GLMM fits where the predictor is linear in the random effects, and against a direct
computation where it is not."""

import numpy as np
import pandas as pd
import pytest

import multilevel
from multilevel.errors import ModelError
from multilevel.model.nonlinear import build_problem
from multilevel.nlmm.glm_laplace import NumpyGlmLaplace


@pytest.fixture(scope="module")
def cbpp() -> pd.DataFrame:
    d = multilevel.load_dataset("cbpp").copy()
    d["prop"] = d["incidence"] / d["size"]
    for k in ("2", "3", "4"):
        d[f"p{k}"] = (d["period"].astype(str) == k).astype(float)
    return d


@pytest.fixture(scope="module")
def cbpp_glmm(cbpp):
    return multilevel.fit(
        "cbind(incidence, size - incidence) ~ p2 + p3 + p4 + (1 | herd)", cbpp, family="binomial"
    )


@pytest.fixture(scope="module")
def cbpp_nl(cbpp):
    """The same GLMM as a nonlinear formula (linear in its parameters)."""
    return multilevel.nlfit(
        "prop ~ a + b2 * p2 + b3 * p3 + b4 * p4",
        cbpp,
        {"a": "1 + (1 | herd)", "b2": "1", "b3": "1", "b4": "1"},
        family="binomial",
        weights="size",
        start={"a": -1, "b2": -1, "b3": -1, "b4": -1},
    )


def test_binomial_equals_the_glmm_fit(cbpp_glmm, cbpp_nl):
    g = cbpp_glmm
    m = cbpp_nl
    assert m.converged
    assert m.loglik == pytest.approx(g.loglik, rel=1e-9)
    np.testing.assert_allclose(m.fixef.to_numpy(), g.fixef.to_numpy(), rtol=1e-5)
    np.testing.assert_allclose(m.se.to_numpy(), g.fixef_se.to_numpy(), rtol=1e-3)
    assert m.n_params == 5 and np.isnan(m.sigma)
    assert "Family: binomial (logit link)" in m.summary() and "Residual" not in m.summary()
    assert np.all((m.fitted > 0) & (m.fitted < 1))
    assert m.predict(scale="link") == pytest.approx(np.log(m.fitted / (1 - m.fitted)))
    sims = m.simulate(3, seed=1)
    assert sims.shape == (56, 3) and np.all((sims >= 0) & (sims <= 1))


def test_poisson_nonlinear_in_a_fixed_effect():
    rng = np.random.default_rng(2)
    g = np.repeat(np.arange(12), 8)
    x = rng.uniform(0, 2, g.size)
    y = rng.poisson(np.exp(0.3 + 0.7 * x + rng.normal(0, 0.4, 12)[g]))
    d = pd.DataFrame({"y": y, "x": x, "g": g})
    ref = multilevel.fit("y ~ x + (1 | g)", d, family="poisson")
    m = multilevel.nlfit(
        "y ~ a + exp(lb) * x", d, {"a": "1 + (1 | g)", "lb": "1"}, family="poisson", start={"a": 0, "lb": 0}
    )
    assert m.loglik == pytest.approx(ref.loglik, rel=1e-9)
    assert np.exp(m.fixef["lb"]) == pytest.approx(ref.fixef["x"], rel=1e-5)


def test_random_effect_inside_the_nonlinearity():
    """With the effect inside exp(), Newton's modes and log|H| (with its curvature term)
    checked level by level against finite differences of the penalized deviance."""
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(10), 12)
    x = rng.uniform(0.2, 1.5, g.size)
    y = rng.poisson(np.exp(np.exp(0.2 + rng.normal(0, 0.3, 10)[g]) * x))
    d = pd.DataFrame({"y": y, "x": x, "g": g})
    m = multilevel.nlfit("y ~ exp(la) * x", d, {"la": "1 + (1 | g)"}, family="poisson", start={"la": 0})
    assert m.converged
    pr = build_problem("y ~ exp(la) * x", d, {"la": "1 + (1 | g)"}, family="poisson")
    obj = NumpyGlmLaplace(pr)
    beta, theta = m.estimate.beta, m.estimate.theta
    modes = obj.modes(beta, theta)
    u = modes["u"]
    base, ZL = obj._base(beta), obj._zl(theta)

    def half_pen(v):
        return 0.5 * obj._pen(obj._mean(obj._phi(base, ZL, v)), v)

    h = 1e-4
    logdet = 0.0
    for j in range(pr.q):
        e = np.zeros(pr.q)
        e[j] = h
        grad_j = (half_pen(u + e) - half_pen(u - e)) / (2 * h)
        assert abs(grad_j) < 1e-5  # a mode
        logdet += np.log((half_pen(u + e) - 2 * half_pen(u) + half_pen(u - e)) / h**2)
    assert modes["logdet"] == pytest.approx(logdet, abs=1e-5)
    assert m.deviance == pytest.approx(modes["pwrss"] + logdet, abs=1e-5)


def test_failure_paths(cbpp):
    args = ("prop ~ a + b2 * p2", cbpp, {"a": "1 + (1 | herd)", "b2": "1"})
    with pytest.raises(ModelError, match="start="):
        multilevel.nlfit(*args, family="binomial", weights="size")
    with pytest.raises(ModelError, match="one grouping factor"):
        multilevel.nlfit(
            "prop ~ a + b2 * p2",
            cbpp.assign(g2=cbpp["period"]),
            {"a": "1 + (1 | herd)", "b2": "1 + (1 | g2)"},
            family="binomial",
            weights="size",
            start={"a": -1, "b2": 0},
            nagq=5,
        )
    with pytest.raises(ModelError, match="Gaussian, binomial or Poisson"):
        multilevel.nlfit(*args, family="Gamma", start={"a": -1, "b2": 0})
    with pytest.raises(ModelError, match="weights= applies"):
        multilevel.nlfit(*args, weights="size", start={"a": -1, "b2": 0})
    with pytest.raises(multilevel.errors.DataError):
        multilevel.nlfit(*args, family="binomial", start={"a": -1, "b2": 0})  # proportions without trials


def test_profile_equals_the_glmm_profile(cbpp_glmm, cbpp_nl):
    """Where the nonlinear model is a GLMM, its likelihood-profile intervals are the GLMM's
    (themselves checked against lme4's in tests/glmm)."""
    g = cbpp_glmm
    m = cbpp_nl
    ours = m.confint(parm=["sd_a|herd", "a", "b3"])
    theirs = g.confint(parm=["sd_(Intercept)|herd", "Intercept", "p3"])
    np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), rtol=2e-4)


def test_quadrature_equals_the_glmm_quadrature(cbpp):
    """Adaptive Gauss-Hermite quadrature of the nonlinear binomial fit against the GLMM's
    (itself checked against glmer's nAGQ in tests/glmm): log-likelihood, estimates, SEs and
    profile intervals."""
    args = (
        "prop ~ a + b2 * p2 + b3 * p3 + b4 * p4",
        cbpp,
        {"a": "1 + (1 | herd)", "b2": "1", "b3": "1", "b4": "1"},
    )
    m = multilevel.nlfit(
        *args, family="binomial", weights="size", start={"a": -1, "b2": -1, "b3": -1, "b4": -1}, nagq=9
    )
    g = multilevel.fit(
        "cbind(incidence, size - incidence) ~ p2 + p3 + p4 + (1 | herd)", cbpp, family="binomial", nagq=9
    )
    assert m.converged and "quadrature" in m.method
    assert m.loglik == pytest.approx(g.loglik, rel=1e-10)
    np.testing.assert_allclose(m.fixef.to_numpy(), g.fixef.to_numpy(), rtol=1e-5)
    np.testing.assert_allclose(m.se.to_numpy(), g.fixef_se.to_numpy(), rtol=1e-3)
    ours = m.confint(parm=["sd_a|herd", "b2"])
    theirs = g.confint(parm=["sd_(Intercept)|herd", "p2"])
    np.testing.assert_allclose(ours.to_numpy(), theirs.to_numpy(), rtol=5e-4)
