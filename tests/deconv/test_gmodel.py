"""Efron's g-modeling: analytic derivatives, convergence, the delta method against a
parametric bootstrap, and the failure paths."""

import numpy as np
import pytest

from multilevel.deconv import get_kernel
from multilevel.deconv.gmodel import _objective, gmodel, natural_spline_basis
from multilevel.errors import DataError, ModelError


def _data(n=1000, seed=1):
    rng = np.random.default_rng(seed)
    theta = rng.normal(1, 1, n)
    return rng, theta, theta + rng.standard_normal(n)


def test_analytic_score_and_hessian():
    rng, _, y = _data(500)
    grid = np.linspace(-3, 5, 41)
    P = np.exp(get_kernel("gaussian").log_density(y, np.ones(y.size), grid))
    Q, w = natural_spline_basis(grid, 5), np.ones(y.size)
    a = 0.5 * rng.standard_normal(5)
    _, _, g, H, *_ = _objective(P, Q, w, a, 1.0)
    eps = 1e-6
    E = np.eye(5)
    fd_g = [
        (_objective(P, Q, w, a + eps * e, 1.0)[0] - _objective(P, Q, w, a - eps * e, 1.0)[0]) / (2 * eps)
        for e in E
    ]
    fd_H = [
        (_objective(P, Q, w, a + eps * e, 1.0)[2] - _objective(P, Q, w, a - eps * e, 1.0)[2]) / (2 * eps)
        for e in E
    ]
    np.testing.assert_allclose(fd_g, g, rtol=1e-6, atol=1e-6 * np.abs(g).max())
    np.testing.assert_allclose(fd_H, H, rtol=1e-5, atol=1e-6 * np.abs(H).max())


def test_delta_method_matches_a_parametric_bootstrap():
    rng, _, y = _data()
    grid = np.linspace(-3, 5, 41)
    m = gmodel(y, grid=grid)
    assert m.converged and m.g.sum() == pytest.approx(1.0)
    boot = []
    for _ in range(100):
        th = rng.choice(grid, y.size, p=m.g)
        boot.append(gmodel(th + rng.standard_normal(y.size), grid=grid).g)
    boot = np.array(boot)
    core = m.g > 0.01
    # the delta-method SEs within 25% of the bootstrap's (100 replicates: ~7% MC error)
    np.testing.assert_allclose(m.g_se[core], boot.std(axis=0)[core], rtol=0.25)


def test_shrinkage_beats_the_raw_estimates_in_every_family():
    rng = np.random.default_rng(3)
    n = 3000
    theta = np.where(rng.random(n) < 0.8, 0.0, rng.normal(2, 1, n))
    y = theta + rng.standard_normal(n)
    fitted = gmodel(y, grid=np.linspace(-3, 6, 91))
    pm, se = fitted.posterior_mean(), fitted.posterior_mean_se()
    assert np.mean((pm - theta) ** 2) < 0.6 * np.mean((y - theta) ** 2)
    assert np.all(se > 0)
    lam = np.where(rng.random(n) < 0.5, 1.0, rng.gamma(2, 3, n))
    x = rng.poisson(lam)
    mp = gmodel(x, family="poisson", grid=np.linspace(0.1, x.max(), 80))
    assert np.mean((mp.posterior_mean() - lam) ** 2) < np.mean((x - lam) ** 2)
    trials = rng.integers(5, 30, n)
    p = rng.beta(2, 5, n)
    s = rng.binomial(trials, p)
    mb = gmodel(s, family="binomial", trials=trials)
    assert mb.converged and np.mean((mb.posterior_mean() - p) ** 2) < np.mean((s / trials - p) ** 2)


@pytest.mark.parametrize(
    "kwargs, error, needle",
    [
        ({"y": [1.0, np.nan, 2.0]}, DataError, "finite"),
        ({"y": [1.0, 2.0], "se": [1.0, 0.0]}, DataError, "se must be positive"),
        ({"y": [1.0, 2.5], "family": "poisson"}, DataError, "count"),
        ({"y": [1.0, 2.0], "family": "binomial"}, DataError, "needs trials"),
        ({"y": [1.0, 2.0], "family": "Gamma"}, ModelError, "no NPMLE kernel"),
        ({"y": [1.0, 2.0], "family": "poisson", "se": 1.0}, ModelError, "se= applies"),
        ({"y": [1.0, 2.0], "family": "nope"}, ModelError, "family"),
        ({"y": [1.0, 2.0], "grid": [0.0, 1.0]}, ModelError, "more than df"),
        ({"y": [1.0, 2.0], "trials": 3}, ModelError, "trials= applies"),
    ],
)
def test_bad_input(kwargs, error, needle):
    with pytest.raises(error, match=needle):
        gmodel(**kwargs)


def test_deconvolve_a_fit_groups_unshrunk_estimates():
    import multilevel
    from multilevel.model.group_effects import group_effects

    d = multilevel.load_dataset("sleepstudy")
    m = multilevel.fit("Reaction ~ Days + (1 | Subject)", d)
    ge = group_effects(m)
    # a random intercept's own estimate is its group's mean residual, with SE sigma / sqrt(n_g)
    resid = d.Reaction - m.fixef["Intercept"] - m.fixef["Days"] * d.Days
    np.testing.assert_allclose(ge.estimate, resid.groupby(d.Subject).mean().to_numpy(), atol=1e-9)
    np.testing.assert_allclose(ge.se, m.sigma / np.sqrt(10), rtol=1e-9)
    # 18 groups under the default penalty: the subgradient condition holds at the uniform prior
    r = multilevel.deconvolve(m, method="gmodel")
    assert r.converged and r.group_effects.grouping == "Subject" and np.all(r.alpha == 0)
    r = multilevel.deconvolve(m, method="gmodel", c0=0.1)
    assert r.converged and np.any(r.alpha != 0)
    with pytest.raises(ModelError, match="drop se="):
        multilevel.deconvolve(m, se=1.0)
    with pytest.raises(ModelError, match=r"one random effect|single random effect"):
        multilevel.deconvolve(multilevel.fit("Reaction ~ Days + (Days | Subject)", d), method="gmodel")


def test_deconvolve_npmle_of_a_fit():
    import multilevel

    m = multilevel.fit("Reaction ~ Days + (1 | Subject)", multilevel.load_dataset("sleepstudy"))
    r = multilevel.deconvolve(m)
    assert r.converged and r.kkt_max <= 1 + 1e-6 and r.group_effects.tau == pytest.approx(37.12, rel=1e-3)
    assert r.posterior_mean().shape == (18,)
    with pytest.raises(ModelError, match="method must be one of"):
        multilevel.deconvolve([1.0, 2.0, 3.0], method="em")
