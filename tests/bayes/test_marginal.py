"""The JAX marginal likelihood against the NumPy REML/ML objective, and exact group-effect draws."""

import json
import warnings
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import multilevel
from multilevel.bayes.program import Structure, draw_group_effects, marginal_data, marginal_loglik
from multilevel.bayes.sampler import enable_x64
from multilevel.lmm.solution import conditional_variances, solve

enable_x64()
REFS = json.loads((Path(__file__).parents[1] / "data" / "lme4_fits.json").read_text())
CASES = [k for k, v in REFS.items() if v["family"] == "gaussian" and v["nobs"] < 5000]


def _setup(formula, data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = multilevel.Model(formula, data)
    st = Structure.from_spec(m.spec, m.family)
    jdata = jax.tree.map(jnp.asarray, marginal_data(m.crossprods, np.zeros(m.spec.p)))
    return m, st, jdata


@pytest.mark.parametrize("case", CASES)
def test_jax_likelihood_equals_the_numpy_objective(case):
    """One blocked algebra, two array libraries: the profiled NumPy deviance at (theta, sigma)
    equals -2 x the JAX log-likelihood at the profiled beta."""
    ref = REFS[case]
    m, st, jdata = _setup(ref["formula"], multilevel.load_dataset(ref["data"]))
    obj = m.objective(False)
    rng = np.random.default_rng(0)
    theta = np.atleast_1d(np.asarray(ref["theta"], float)) * rng.uniform(0.8, 1.2) + 0.05
    f = obj.factor(theta)
    beta = solve(obj, f).beta
    for sigma in (0.7, 3.0):
        Ss = [jnp.asarray(T * sigma) for T in m.spec.templates(theta)]
        ll = float(marginal_loglik(st, jdata, jnp.asarray(beta), Ss, sigma))
        assert -2 * ll == pytest.approx(obj.deviance_at(f, sigma, reml=False), rel=1e-10)


def test_known_se_likelihood_equals_the_numpy_objective():
    d = multilevel.load_dataset("eight_schools")
    m, st, jdata = _setup("y | se(sigma) ~ 1 + (1 | school)", d)
    obj = m.objective(False)
    f = obj.factor(np.array([4.0]))
    beta = solve(obj, f).beta
    ll = float(marginal_loglik(st, jdata, jnp.asarray(beta), [jnp.array([[4.0]])], 1.0))
    assert -2 * ll == pytest.approx(obj(np.array([4.0])), rel=1e-12)


@pytest.mark.parametrize(
    ("formula", "data"),
    [
        ("Reaction ~ Days + (Days | Subject)", "sleepstudy"),
        ("diameter ~ 1 + (1|plate) + (1|sample)", "Penicillin"),
    ],
)
def test_group_effect_draws_have_the_exact_conditional_mean_and_variance(formula, data):
    m, st, jdata = _setup(formula, multilevel.load_dataset(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = m.fit()
    obj, fac, sigma = fit.objective, fit.factor, fit.sigma
    beta = jnp.asarray(fit.fixef.to_numpy())
    Ss = [jnp.asarray(T * sigma) for T in fac.templates]
    # noise 0: the conditional mean given (beta, theta, sigma), i.e. the fit's conditional modes
    mean = draw_group_effects(st, jdata, beta, Ss, sigma, jax.random.PRNGKey(0), noise=0.0)
    for got, want in zip(mean, fit.ranef_values()):
        np.testing.assert_allclose(np.asarray(got), want, rtol=1e-8, atol=1e-8)
    keys = jax.random.split(jax.random.PRNGKey(1), 4000)
    draws = jax.vmap(lambda k: draw_group_effects(st, jdata, beta, Ss, sigma, k))(keys)
    for k, (dr, cv) in enumerate(zip(draws, conditional_variances(obj, fac, sigma))):
        dr = np.asarray(dr)
        var = dr.var(axis=0)  # (levels, q)
        want = np.diagonal(cv, axis1=-2, axis2=-1) if cv.ndim == 3 else cv
        np.testing.assert_allclose(var, want.reshape(var.shape), rtol=0.1)
        np.testing.assert_allclose(dr.mean(axis=0), np.asarray(mean[k]), atol=4 * np.sqrt(want.max() / 4000))
