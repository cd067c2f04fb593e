"""Known residual standard errors (``y | se(s)``): criterion, gradient and fit."""

import numpy as np
import pandas as pd
import pytest

import multilevel
from multilevel.errors import ModelError
from multilevel.lmm.gradient import criterion_and_gradient


@pytest.fixture(scope="module")
def meta():
    rng = np.random.default_rng(3)
    k = 30
    se = rng.uniform(0.5, 2.0, k)
    region = np.repeat(np.arange(6), 5)
    x = rng.normal(size=k)
    y = 1.0 + 0.5 * x + rng.normal(0, 0.8, 6)[region] + rng.normal(0, 1.0, k) + rng.normal(0, se)
    return pd.DataFrame({"y": y, "se": se, "x": x, "study": np.arange(k), "region": region})


def _direct(df, sd_study, sd_region, reml):
    """-2 log (restricted) likelihood from V = Z G Z' + diag(se^2), built densely."""
    n = len(df)
    X = np.column_stack([np.ones(n), df.x])
    Zr = (df.region.to_numpy()[:, None] == np.arange(6)).astype(float)
    V = sd_study**2 * np.eye(n) + sd_region**2 * Zr @ Zr.T + np.diag(df.se**2)
    Vi = np.linalg.inv(V)
    XtViX = X.T @ Vi @ X
    beta = np.linalg.solve(XtViX, X.T @ Vi @ df.y)
    r = df.y - X @ beta
    dev = np.linalg.slogdet(V)[1] + r @ Vi @ r + n * np.log(2 * np.pi)
    if reml:
        dev += np.linalg.slogdet(XtViX)[1] - 2 * np.log(2 * np.pi)
    return dev


@pytest.mark.parametrize("reml", [True, False])
def test_criterion_is_the_marginal_likelihood_with_known_variances(meta, reml):
    m = multilevel.Model("y | se(se) ~ x + (1 | study) + (1 | region)", meta)
    obj = m.objective(reml)
    assert obj.sigma_fixed == 1.0
    for sd in [(0.3, 0.7), (1.2, 0.1), (0.0, 0.5)]:
        theta = np.array(sd)  # study has more levels, so it comes first in theta
        assert obj(theta) == pytest.approx(_direct(meta, sd[0], sd[1], reml), rel=1e-10)


def test_gradient_matches_finite_differences(meta):
    obj = multilevel.Model("y | se(se) ~ x + (1 | study) + (1 | region)", meta).objective(True)
    theta = np.array([0.9, 0.6])
    _, g = criterion_and_gradient(obj, theta)
    h = 1e-6
    fd = np.array([(obj(theta + h * e) - obj(theta - h * e)) / (2 * h) for e in np.eye(2)])
    np.testing.assert_allclose(g, fd, rtol=1e-5)


def test_fit_reaches_the_direct_optimum_and_reports_known_se(meta):
    fit = multilevel.fit("y | se(se) ~ x + (1 | study) + (1 | region)", meta)
    from scipy.optimize import minimize

    best = minimize(
        lambda s: _direct(meta, abs(s[0]), abs(s[1]), True),
        [1.0, 1.0],
        method="Nelder-Mead",
        options={"xatol": 1e-9, "fatol": 1e-12, "maxiter": 4000},
    )
    assert fit.criterion <= best.fun + 1e-7
    assert fit.sigma == 1.0
    assert fit.n_params == 4  # two coefficients, two SDs: no residual variance
    text = fit.summary()
    assert "Residual SDs known: se(se)" in text
    assert "Residual  " not in text


def test_eight_schools_reml_tau_is_exactly_zero():
    fit = multilevel.fit("y | se(sigma) ~ 1 + (1 | school)", multilevel.load_dataset("eight_schools"))
    assert fit.theta[0] == 0.0
    assert fit.optinfo.singular
    assert fit.fixef["Intercept"] == pytest.approx(7.6856, abs=1e-4)  # precision-weighted mean
    se = multilevel.load_dataset("eight_schools").sigma.to_numpy()
    assert fit.fixef_se["Intercept"] == pytest.approx(np.sum(se**-2.0) ** -0.5, rel=1e-8)


def test_se_with_a_non_gaussian_family_is_an_error():
    df = pd.DataFrame({"y": [0, 1, 1, 0], "s": [1.0, 1, 1, 1], "g": list("aabb")})
    with pytest.raises(ModelError, match="se\\(\\) gives known residual"):
        multilevel.fit("y | se(s) ~ 1 + (1 | g)", df, family="binomial")
