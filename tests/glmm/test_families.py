"""Every family against an independent computation of its marginal likelihood.

On small simulated data with one grouping factor, the marginal log-likelihood
is computed by brute-force numerical integration (scipy.integrate.quad) with
scipy.stats densities, independently of the package. The quadrature fit
(nagq = 15) must report that log-likelihood at its estimates, and those
estimates must maximize it.
"""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import integrate, special, stats

import multilevel

N_GROUPS, PER_GROUP = 12, 10


INV = {
    "identity": lambda e: e,
    "log": np.exp,
    "logit": special.expit,
    "probit": stats.norm.cdf,
    "cloglog": lambda e: -np.expm1(-np.exp(e)),
    "inverse": lambda e: 1 / e,
    "sqrt": lambda e: e * e,
}


def simulate(family, link, seed=1):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(N_GROUPS), PER_GROUP)
    x = rng.normal(size=g.size)
    b = rng.normal(scale=0.6, size=N_GROUPS)[g]
    eta = {
        "identity": 3.0,
        "log": 0.5,
        "logit": 0.0,
        "probit": 0.0,
        "cloglog": -0.5,
        "inverse": 0.5,
        "sqrt": 4.0,
    }[link]
    eta = eta + 0.4 * x + b * (0.1 if link == "inverse" else 1.0)
    if link == "inverse":
        eta = np.abs(eta) + 0.2
    mu = INV[link](eta)
    if family == "binomial":
        y = rng.binomial(1, mu)
    elif family == "poisson":
        y = rng.poisson(mu)
    elif family == "Gamma":
        y = rng.gamma(shape=4.0, scale=mu / 4.0)
    elif family == "inverse_gaussian":
        y = stats.invgauss.rvs(mu * 0.2, scale=1 / 0.2, random_state=rng)
    elif family == "negative_binomial":
        y = rng.negative_binomial(3.0, 3.0 / (3.0 + mu))
    else:
        y = rng.normal(mu, 0.5)
    return pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})


def logdens(family, y, mu, disp):
    if family == "binomial":
        return stats.binom.logpmf(y, 1, mu)
    if family == "poisson":
        return stats.poisson.logpmf(y, mu)
    if family == "Gamma":
        shape = 1 / disp
        return stats.gamma.logpdf(y, a=shape, scale=mu / shape)
    if family == "inverse_gaussian":
        return stats.invgauss.logpdf(y, mu * disp, scale=1 / disp)
    if family == "negative_binomial":
        return stats.nbinom.logpmf(y, disp, disp / (disp + mu))
    return stats.norm.logpdf(y, mu, math.sqrt(disp))


GRID = np.linspace(-10, 10, 4001)


def brute_loglik(df, family, link, beta, sd, disp):
    """Marginal log-likelihood by Simpson's rule on a fine grid (no Gauss-Hermite)."""
    total = 0.0
    logphi = stats.norm.logpdf(GRID)
    for _, grp in df.groupby("g"):
        y = grp.y.to_numpy()[:, None]
        eta = beta[0] + beta[1] * grp.x.to_numpy()[:, None] + sd * GRID[None, :]
        with np.errstate(all="ignore"):
            ll = np.sum(logdens(family, y, INV[link](eta), disp), axis=0) + logphi
        ll = np.where(np.isfinite(ll), ll, -np.inf)
        c = ll.max()
        total += c + math.log(integrate.simpson(np.exp(ll - c), x=GRID))
    return total


FAMILIES = [
    ("binomial", "logit"),
    ("binomial", "probit"),
    ("binomial", "cloglog"),
    ("poisson", "log"),
    ("poisson", "sqrt"),
    ("Gamma", "log"),
    ("inverse_gaussian", "log"),
    ("negative_binomial", "log"),
    ("gaussian", "log"),
]


@pytest.mark.parametrize("family, link", FAMILIES)
def test_quadrature_fit_maximizes_the_brute_force_likelihood(family, link):
    df = simulate(family, link)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = multilevel.fit("y ~ x + (1 | g)", df, family=family, link=link, nagq=25)
    beta = m.fixef.to_numpy()
    sd = float(m.theta[0])
    disp = m.dispersion if m.dispersion is not None else 1.0
    ll = brute_loglik(df, family, link, beta, sd, disp)
    assert m.loglik == pytest.approx(ll, abs=1e-5)

    # a maximum: moving any parameter either way lowers the brute-force likelihood
    has_disp = m.dispersion is not None
    x0 = np.concatenate([beta, [sd], [math.log(disp)] if has_disp else []])

    def ll_at(v):
        return brute_loglik(df, family, link, v[:2], v[2], math.exp(v[3]) if has_disp else 1.0)

    for i in range(x0.size):
        for step in (-1e-2, 1e-2):
            v = x0.copy()
            v[i] += step * max(abs(v[i]), 0.1)
            assert ll_at(v) < ll + 1e-7


@pytest.mark.parametrize("family, link", [("binomial", "logit"), ("poisson", "log"), ("Gamma", "log")])
def test_laplace_is_one_node_quadrature(family, link):
    df = simulate(family, link, seed=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lap = multilevel.fit("y ~ x + (1 | g)", df, family=family, link=link, nagq=1)
        one = multilevel.Model("y ~ x + (1 | g)", df, family=family, link=link)
    from multilevel.glmm.agq import agq_deviance
    from multilevel.glmm.pirls import GlmmProblem

    prob = GlmmProblem(one.spec, one.design, one.family)
    disp = lap.dispersion if lap.dispersion is not None else 1.0
    r = prob.pirls(lap.theta, lap.fixef.to_numpy(), disp)
    assert agq_deviance(prob, r, lap.theta, lap.fixef.to_numpy(), disp, 1) == pytest.approx(
        lap.deviance, rel=1e-9
    )


def test_vector_random_effects_quadrature():
    """q = 2 random effects by product-grid AGQ (lme4 refuses nAGQ > 1 here)."""
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(15), 12)
    x = rng.normal(size=g.size)
    b0 = rng.normal(scale=0.7, size=15)[g]
    b1 = rng.normal(scale=0.4, size=15)[g]
    y = rng.poisson(np.exp(0.3 + (0.5 + b1) * x + b0))
    df = pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m1 = multilevel.fit("y ~ x + (x | g)", df, family="poisson", nagq=1)
        m9 = multilevel.fit("y ~ x + (x | g)", df, family="poisson", nagq=15)
    # quadrature refines the Laplace likelihood a little; the estimates stay close
    assert abs(m9.loglik - m1.loglik) < 0.5
    np.testing.assert_allclose(m9.fixef, m1.fixef, atol=0.05)
    # and its likelihood is the 2-D integral: check one group's contribution by brute force
    T = m9.spec.templates(m9.theta)[0]
    beta = m9.fixef.to_numpy()

    grid = np.linspace(-8, 8, 801)
    U0, U1 = np.meshgrid(grid, grid, indexing="ij")

    def group_lik(j):
        sel = (df.g == str(j)).to_numpy()
        yy, xx = df.y.to_numpy()[sel], df.x.to_numpy()[sel]
        b0, b1 = T[0, 0] * U0, T[1, 0] * U0 + T[1, 1] * U1
        eta = beta[0] + b0[..., None] + (beta[1] + b1[..., None]) * xx
        ll = stats.poisson.logpmf(yy, np.exp(eta)).sum(-1) + stats.norm.logpdf(U0) + stats.norm.logpdf(U1)
        c = ll.max()
        return c + math.log(integrate.simpson(integrate.simpson(np.exp(ll - c), x=grid, axis=1), x=grid))

    total = sum(group_lik(j) for j in range(15))
    assert m9.loglik == pytest.approx(total, abs=1e-5)
