"""Derivatives of every family's log density in eta (and in the dispersion) against
finite differences of its own ``logpdf``: what the observed-information Laplace and
its gradient use."""

from __future__ import annotations

import numpy as np
import pytest

from multilevel.family import family_class, family_names, get_family
from multilevel.family.derivatives import (
    eta_derivatives,
    eta_derivatives_ddisp,
    has_third_derivatives,
    observed_weights,
)

DISP = {"gaussian": 0.7, "Gamma": 0.4, "inverse_gaussian": 0.3, "negative_binomial": 2.5}


def _cases() -> list[tuple[str, str]]:
    return [(f, link) for f in family_names() for link in family_class(f).links]


def _point(family: str, link: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Responses, linear predictors inside the link's domain and prior weights."""
    rng = np.random.default_rng(3)
    mu = {"binomial": rng.uniform(0.2, 0.7, 6)}.get(family, rng.uniform(0.5, 3.0, 6))
    y = {
        "binomial": np.array([0.0, 1.0, 0.25, 0.5, 1.0, 0.0]),
        "poisson": np.array([0.0, 1.0, 3.0, 2.0, 5.0, 1.0]),
        "negative_binomial": np.array([0.0, 1.0, 3.0, 2.0, 5.0, 1.0]),
    }.get(family, rng.uniform(0.2, 4.0, 6))
    w = {"binomial": np.array([1.0, 1.0, 4.0, 2.0, 3.0, 1.0])}.get(family, rng.uniform(0.5, 2.0, 6))
    eta = get_family(family, link).link.link(mu)
    return y, np.asarray(eta, dtype=float), w


def _logp(fam, y, eta, w, disp):
    return fam.logpdf(y, fam.link.inverse(eta), w, disp)


@pytest.mark.parametrize(("family", "link"), _cases())
def test_eta_derivatives_match_finite_differences(family, link):
    fam = get_family(family, link)
    y, eta, w = _point(family, link)
    disp = DISP.get(family, 1.0)
    assert has_third_derivatives(fam)
    d = eta_derivatives(fam, y, eta, fam.link.inverse(eta), w, disp, third=True)
    h = 1e-4 * np.maximum(1.0, np.abs(eta))

    def lp(e):
        return _logp(fam, y, e, w, disp)

    score = (lp(eta + h) - lp(eta - h)) / (2 * h)
    second = (lp(eta + h) - 2 * lp(eta) + lp(eta - h)) / h**2
    np.testing.assert_allclose(d.score, score, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(-d.hessian, second, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(observed_weights(fam, y, eta, fam.link.inverse(eta), w, disp), d.hessian)

    def hess(e):
        return eta_derivatives(fam, y, e, fam.link.inverse(e), w, disp).hessian

    third = (hess(eta + h) - hess(eta - h)) / (2 * h)
    np.testing.assert_allclose(d.dhessian, third, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(third).max()))


@pytest.mark.parametrize(("family", "link"), [c for c in _cases() if get_family(*c).has_dispersion])
def test_dispersion_derivatives_match_finite_differences(family, link):
    fam = get_family(family, link)
    y, eta, w = _point(family, link)
    disp = DISP[family]
    mu = fam.link.inverse(eta)
    ds, dh = eta_derivatives_ddisp(fam, y, eta, mu, w, disp)
    e = 1e-5 * disp

    def at(dp):
        return eta_derivatives(fam, y, eta, mu, w, dp)

    np.testing.assert_allclose(ds, (at(disp + e).score - at(disp - e).score) / (2 * e), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        dh, (at(disp + e).hessian - at(disp - e).hessian) / (2 * e), rtol=1e-6, atol=1e-7
    )
    # and d logpdf / d disp, which the gradient's dispersion component also uses
    num = (fam.logpdf(y, mu, w, disp + e) - fam.logpdf(y, mu, w, disp - e)) / (2 * e)
    np.testing.assert_allclose(fam.dlogpdf_ddisp(y, mu, w, disp), num, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("family", "link"), [c for c in _cases() if get_family(*c).canonical])
def test_canonical_links_observed_equal_expected(family, link):
    fam = get_family(family, link)
    y, eta, w = _point(family, link)
    disp = DISP.get(family, 1.0)
    mu = fam.link.inverse(eta)
    expected = w * fam.link.mu_eta(eta) ** 2 / fam.variance(mu, disp)
    np.testing.assert_allclose(observed_weights(fam, y, eta, mu, w, disp), expected, rtol=1e-10)


def test_a_family_without_third_derivatives_is_reported():
    from multilevel.family import Gamma

    class NoThird(Gamma):
        name = "no_third_for_test"

        def d2variance(self, mu, disp):
            raise NotImplementedError

    fam = NoThird(get_family("Gamma", "log").link)
    assert not has_third_derivatives(fam)


@pytest.mark.parametrize(
    ("family", "link"), [("Gamma", "log"), ("inverse_gaussian", "log"), ("gaussian", "log")]
)
def test_lme4_aic_is_minus_twice_the_loglik_at_the_deviance_dispersion_plus_two(family, link):
    # lme4's glmFamily::aic (R's family()$aic): the dispersion replaced by deviance / n
    fam = get_family(family, link)
    rng = np.random.default_rng(3)
    y, mu, w = rng.gamma(2.0, 1.0, 40), rng.gamma(2.0, 1.0, 40), np.ones(40)
    dev = float(np.sum(fam.unit_deviance(y, mu, w, 1.0)))
    ll = float(np.sum(fam.logpdf(y, mu, w, dev / y.size)))
    assert fam.has_lme4_aic
    assert fam.lme4_aic(y, mu, w, dev) == pytest.approx(-2.0 * ll + 2.0, rel=1e-12)


def test_lme4_aic_weights_multiply_the_gamma_log_density():
    from scipy import stats

    fam = get_family("Gamma", "log")
    y, mu, w = np.array([0.5, 1.5, 2.0, 3.0]), np.array([1.0, 1.2, 2.5, 2.0]), np.array([1.0, 2.0, 0.5, 3.0])
    dev = float(np.sum(fam.unit_deviance(y, mu, w, 1.0)))
    d = dev / w.sum()
    ref = -2.0 * float(np.sum(w * stats.gamma.logpdf(y, 1.0 / d, scale=mu * d))) + 2.0
    assert fam.lme4_aic(y, mu, w, dev) == pytest.approx(ref, rel=1e-12)
    assert not get_family("poisson", "log").has_lme4_aic
