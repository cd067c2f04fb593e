"""The analytic gradient of the Laplace deviance against central differences.

Every family and link (canonical ones, where the observed and expected
information agree, and non-canonical ones, where the mode's sensitivity needs
its own factor), scalar and vector random effects, crossed factors, a
variance on the boundary, and the dispersion / shape parameter.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from multilevel.datasets import load_dataset
from multilevel.errors import ConvergenceWarning
from multilevel.family import get_family
from multilevel.glmm.gradient import gradient_available, laplace_gradient
from multilevel.glmm.pirls import GlmmProblem
from multilevel.model.design import build_model
from multilevel.optim.numdiff import central_jacobian


def _simulated(seed: int = 1, n: int = 500) -> dict:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 25, n)
    b = rng.integers(0, 7, n)
    x = rng.normal(size=n)
    eta = 0.4 + 0.3 * x + rng.normal(0, 0.5, 25)[a] + rng.normal(0, 0.3, 7)[b]
    mu = np.exp(eta)
    return {
        "a": a.astype(str),
        "b": b.astype(str),
        "x": x,
        "count": rng.poisson(mu).astype(float),
        "pos": rng.gamma(4.0, mu / 4.0),
        "bin": (rng.random(n) < 1 / (1 + np.exp(-(eta - 1.2)))).astype(float),
    }


def _check(
    formula, data, family, link=None, theta=None, beta_shift=0.05, disp=1.0, tol=1e-5, laplace="observed"
):
    fam = get_family(family, link)
    spec, design = build_model(formula, data, family=fam)
    prob = GlmmProblem(spec, design, fam, laplace=laplace)
    if prob.lme4_criterion:
        # a scale dispersion's laplace="expected" is lme4's glmer criterion, which has no
        # analytic gradient; the gradient's expected-information Laplace of the
        # likelihood is what such a problem computes for quadrature (nagq > 1)
        assert not gradient_available(prob)
        prob = GlmmProblem(spec, design, fam, laplace=laplace, nagq=2)
        assert not prob.lme4_criterion
    assert prob.observed == (laplace == "observed" and not fam.canonical)
    k, p = spec.theta_map.size, spec.p
    if theta is None:
        theta = np.where(spec.theta_map.row == spec.theta_map.col, 0.7, 0.15)
    theta = np.asarray(theta, dtype=float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r0 = prob.pirls(theta, None, disp)
    beta = r0.beta + beta_shift
    has = fam.has_dispersion

    def dev(x: np.ndarray) -> float:
        d = math.exp(x[k + p]) if has else 1.0
        return prob.pirls(x[:k], x[k : k + p], d, u0=r0.u, tol=1e-13).laplace_deviance

    x = np.concatenate([theta, beta, [math.log(disp)] if has else []])
    r = prob.pirls(theta, beta, disp, u0=r0.u, tol=1e-13)
    g = laplace_gradient(prob, r, theta, beta, disp)
    # steps of 1e-3: truncation error ~1e-6, above the noise of the converged modes
    gn = central_jacobian(dev, x, 1e-3 * np.maximum(1.0, np.abs(x)))[0]
    np.testing.assert_allclose(g, gn, rtol=tol, atol=tol * max(1.0, float(np.max(np.abs(gn)))))


CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


LAPLACE = ["observed", "expected"]


@pytest.mark.parametrize(
    ("link", "laplace"),
    [
        ("logit", "observed"),
        ("probit", "observed"),
        ("probit", "expected"),
        ("cloglog", "observed"),
        ("cloglog", "expected"),
    ],
)
def test_binomial_links(link, laplace):
    _check(CBPP, load_dataset("cbpp"), "binomial", link, laplace=laplace)


@pytest.mark.parametrize(("link", "laplace"), [("log", "observed"), ("sqrt", "expected")])
def test_poisson_crossed_and_nested(link, laplace):
    f = "TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)"
    _check(f, load_dataset("grouseticks"), "poisson", link, laplace=laplace)


def test_poisson_sqrt_crossed_observed():
    _check("count ~ x + (1 | a) + (1 | b)", _simulated(5), "poisson", "sqrt", beta_shift=0.02)


def test_vector_random_effects_in_both_blocks():
    _check("count ~ x + (1 + x | a) + (1 + x | b)", _simulated(), "poisson")


def test_variance_on_the_boundary():
    # a slope variance and its correlation at 0: the gradient needs no T^{-1}
    _check("count ~ x + (1 + x | a) + (1 | b)", _simulated(), "poisson", theta=[0.6, 0.0, 0.0, 0.4])


def test_binary_crossed():
    _check("bin ~ x + (1 | a) + (1 | b)", _simulated(2), "binomial")


@pytest.mark.parametrize(
    ("family", "link", "disp"),
    [
        ("Gamma", "log", 0.25),
        ("Gamma", "inverse", 0.25),
        ("inverse_gaussian", "log", 0.05),
        ("gaussian", "log", 1.5),
        ("negative_binomial", "log", 3.0),
        ("negative_binomial", "sqrt", 3.0),
    ],
)
@pytest.mark.parametrize("laplace", LAPLACE)
def test_dispersion_families(family, link, disp, laplace):
    data = _simulated(3)
    response = "count" if family == "negative_binomial" else "pos"
    beta_shift = 0.05 if link == "log" else 0.01
    _check(
        f"{response} ~ x + (1 | a) + (1 | b)",
        data,
        family,
        link,
        beta_shift=beta_shift,
        disp=disp,
        laplace=laplace,
    )


def test_vector_terms_observed_information():
    # a vector term in both blocks with a non-canonical link: the determinant's
    # derivative needs the third derivative of the log density
    data = _simulated(4)
    _check("pos ~ x + (1 + x | a) + (1 | b)", data, "Gamma", "log", disp=0.25, beta_shift=0.02)


def test_stage2_that_stops_with_a_large_gradient_is_flagged(monkeypatch):
    import multilevel
    from multilevel.glmm import fit as glmm_fit

    # an impossible stopping rule: every restart ends with the gradient "not small"
    monkeypatch.setattr(glmm_fit, "GTOL", 1e-30)
    monkeypatch.setattr(glmm_fit, "GRADIENT_OK", 1e-30)
    monkeypatch.setattr(glmm_fit, "MAX_RESTARTS", 0)
    with pytest.warns(ConvergenceWarning, match="gradient not small"):
        m = multilevel.fit(CBPP, load_dataset("cbpp"), family="binomial")
    assert not m.converged
    assert m.optinfo.return_code.startswith(glmm_fit.GRADIENT_NOT_SMALL)


def test_wald_covariance_from_the_gradient_matches_deviance_differences():
    import multilevel
    from multilevel.glmm.fit import deviance_function
    from multilevel.optim.numdiff import jacobian_hessian

    m = multilevel.fit(CBPP, load_dataset("cbpp"), family="binomial")
    k, p = m.theta.size, m.spec.p
    f = deviance_function(m.problem, 1, k, p, False, m.estimate.pirls.u)
    x = np.concatenate([m.theta, m.estimate.beta])
    _, H = jacobian_hessian(lambda v: np.array([f(v)]), x, d=1e-3, eps=1e-4, levels=2)
    np.testing.assert_allclose(m._hessian, H, rtol=1e-5, atol=1e-5 * np.abs(H).max())
