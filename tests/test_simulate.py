"""Parametric simulation and prediction intervals."""

import warnings

import numpy as np
import pandas as pd
import pytest

import multilevel


@pytest.fixture(scope="module")
def sleep_fit():
    return multilevel.fit("Reaction ~ Days + (Days | Subject)", multilevel.load_dataset("sleepstudy"))


def test_lmm_simulation_reproduces_the_fitted_variance(sleep_fit):
    sims = sleep_fit.simulate(400, seed=1)
    assert sims.shape == (400, 180)
    # the marginal variance at Days = 0: sigma^2 + var(intercept)
    day0 = multilevel.load_dataset("sleepstudy").Days.to_numpy() == 0
    want = sleep_fit.sigma**2 + sleep_fit.covariances["Subject"].loc["Intercept", "Intercept"]
    assert sims[:, day0].var() == pytest.approx(want, rel=0.1)
    same = sleep_fit.simulate(2, seed=1)
    np.testing.assert_allclose(same, sims[:2])
    modes = sleep_fit.simulate(300, seed=2, use_modes=True)
    np.testing.assert_allclose(modes.mean(axis=0), sleep_fit.fitted, atol=4 * sleep_fit.sigma / np.sqrt(300))


def test_refit_of_simulated_data_recovers_the_parameters(sleep_fit):
    d = multilevel.load_dataset("sleepstudy")
    ests = []
    for y in sleep_fit.simulate(20, seed=3):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ests.append(multilevel.fit("y ~ Days + (Days | Subject)", d.assign(y=y)).fixef["Days"])
    assert np.mean(ests) == pytest.approx(
        sleep_fit.fixef["Days"], abs=4 * sleep_fit.fixef_se["Days"] / np.sqrt(20)
    )


def test_glmm_simulation_stays_in_support():
    m = multilevel.fit(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)",
        multilevel.load_dataset("cbpp"),
        family="binomial",
    )
    sims = m.simulate(50, seed=0)
    assert sims.shape == (50, 56) and sims.min() >= 0 and sims.max() <= 1
    assert abs(sims.mean() - m.fitted.mean()) < 0.05


def test_prediction_intervals_cover_new_observations(sleep_fit):
    d = multilevel.load_dataset("sleepstudy")
    pi = sleep_fit.predict_interval()
    assert list(pi.columns) == ["fit", "se_fit", "lower", "upper"]
    np.testing.assert_allclose(pi.fit, sleep_fit.fitted, rtol=1e-10)
    covered = (d.Reaction >= pi.lower) & (d.Reaction <= pi.upper)
    assert 0.9 < covered.mean() <= 1.0
    new = pd.DataFrame({"Days": [5, 5], "Subject": ["308", "new"]})
    out = sleep_fit.predict_interval(new, new_levels="population")
    assert out.upper[1] - out.lower[1] > out.upper[0] - out.lower[0]  # a new subject is less certain
    pop = sleep_fit.predict_interval(new.iloc[:1], conditional=False)
    assert pop.fit[0] == pytest.approx(sleep_fit.fixef["Intercept"] + 5 * sleep_fit.fixef["Days"])
