"""predict() of linear and generalized mixed models on new data: offsets, fitted levels,
missing values. References: lme4 1.1-31 fits in tests/data/lme4_fits.json."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

import multilevel
from multilevel.errors import DataError

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
SLEEP = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def sleep():
    return multilevel.load_dataset("sleepstudy").assign(o=100.0)


@pytest.fixture(scope="module")
def cbpp():
    d = multilevel.load_dataset("cbpp")
    return d.assign(lsize=np.log(d["size"]))


@pytest.fixture(scope="module")
def cbpp_fit(cbpp):
    return multilevel.fit(CBPP, cbpp, family="binomial")


@pytest.mark.parametrize(
    "formula, kwargs",
    [(SLEEP, {"offset": "o"}), ("Reaction ~ Days + offset(o) + (Days | Subject)", {})],
)
def test_lmm_predict_includes_the_offset(sleep, formula, kwargs):
    m = multilevel.fit(formula, sleep, **kwargs)
    np.testing.assert_allclose(m.predict(sleep), m.fitted, rtol=1e-12)
    np.testing.assert_allclose(m.predict(sleep, conditional=False), m.predict(conditional=False), rtol=1e-12)
    shifted = m.predict(sleep.assign(o=0.0), conditional=False)
    np.testing.assert_allclose(m.predict(sleep, conditional=False) - shifted, 100.0)


def test_lmm_offset_array_needs_offset_for_new_data(sleep):
    o = np.linspace(0, 50, len(sleep))
    m = multilevel.fit(SLEEP, sleep, offset=o)
    with pytest.raises(DataError, match="offset= as an array"):
        m.predict(sleep)
    np.testing.assert_allclose(m.predict(sleep, offset=o), m.fitted, rtol=1e-12)


@pytest.mark.parametrize(
    "formula, kwargs",
    [
        ("incidence ~ period + (1 | herd)", {"offset": "lsize"}),
        ("incidence ~ period + offset(log(size)) + (1 | herd)", {}),
    ],
)
def test_glmm_predict_includes_the_offset(cbpp, formula, kwargs):
    m = multilevel.fit(formula, cbpp, family="poisson", **kwargs)
    np.testing.assert_allclose(m.predict(cbpp), m.fitted, rtol=1e-10)
    np.testing.assert_allclose(m.predict(cbpp, type="link"), m.linear_predictor, rtol=1e-10)
    pop = m.predict(cbpp, type="link", conditional=False)
    np.testing.assert_allclose(pop, m.predict(type="link", conditional=False), rtol=1e-12)


def test_glmm_fitted_levels_by_name_match_lme4(cbpp, cbpp_fit, lme4_refs):
    ref = lme4_refs["cbpp_laplace"]
    fe, modes = ref["fixef"], dict(zip(ref["ranef"]["level"], ref["ranef"]["condval"]))
    want = expit(
        fe["(Intercept)"]
        + np.array([0.0, fe["period2"], fe["period3"], fe["period4"]])
        + np.array([modes["1"], modes["1"], modes["2"], modes["2"]])
    )
    new = pd.DataFrame({"period": [1, 2, 3, 4], "herd": ["1", "1", "2", "2"]})
    got = cbpp_fit.predict(new, type="response")
    np.testing.assert_allclose(got, want, rtol=1e-3)
    np.testing.assert_allclose(got, [0.308, 0.142, 0.056, 0.036], atol=1e-3)
    np.testing.assert_allclose(cbpp_fit.predict(new.astype(str)), got, rtol=1e-12)
    pl = pytest.importorskip("polars")
    pa = pytest.importorskip("pyarrow")
    np.testing.assert_allclose(cbpp_fit.predict(pl.from_pandas(new)), got, rtol=1e-12)
    np.testing.assert_allclose(cbpp_fit.predict(pa.Table.from_pandas(new)), got, rtol=1e-12)
    np.testing.assert_allclose(cbpp_fit.predict(cbpp), cbpp_fit.fitted, rtol=1e-10)


def test_glmm_unseen_levels(cbpp_fit):
    with pytest.raises(DataError, match=r"column 'period' has level '5'.*'1', '2', '3', '4'"):
        cbpp_fit.predict(pd.DataFrame({"period": ["5"], "herd": ["1"]}))
    new = pd.DataFrame({"period": [2, 2], "herd": ["1", "99"]})
    with pytest.raises(DataError, match="new_levels='population'"):
        cbpp_fit.predict(new)
    got = cbpp_fit.predict(new, new_levels="population", type="link")
    pop = cbpp_fit.predict(new[["period"]], conditional=False, type="link")
    assert got[1] == pytest.approx(pop[1], rel=1e-12)
    assert got[0] == pytest.approx(pop[0] + cbpp_fit.ranef["herd"].loc["1"].iloc[0], rel=1e-12)


def test_glmm_integer_year_matches_lme4(lme4_refs):
    ref = lme4_refs["grouseticks_poisson"]
    d = multilevel.load_dataset("grouseticks")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = multilevel.fit(ref["formula"], d, family="poisson")
    # at the mean height scale(HEIGHT) is 0: the prediction is the year's fixed effects
    new = pd.DataFrame({"YEAR": [95, 96, 97], "HEIGHT": [d.HEIGHT.mean()] * 3})
    fe = ref["fixef"]
    want = fe["(Intercept)"] + np.array([0.0, fe["YEAR96"], fe["YEAR97"]])
    np.testing.assert_allclose(m.predict(new, type="link", conditional=False), want, rtol=1e-4)
    with pytest.raises(DataError, match=r"'YEAR' has level '98'"):
        m.predict(new.assign(YEAR=98), conditional=False)


def test_lmm_categorical_fixed_effect(sleep):
    d = sleep.assign(phase=pd.Categorical(sleep.Days.to_numpy() // 4))  # integer categories 0, 1, 2
    m = multilevel.fit("Reaction ~ phase + (1 | Subject)", d)
    np.testing.assert_allclose(m.predict(d), m.fitted, rtol=1e-12)
    new = pd.DataFrame({"phase": ["0", "2", 1.0], "Subject": ["308"] * 3}).astype({"phase": object})
    fe = m.fixef
    want = fe["Intercept"] + np.array([0.0, fe["phase[T.2]"], fe["phase[T.1]"]])
    np.testing.assert_allclose(m.predict(new, conditional=False), want, rtol=1e-12)
    with pytest.raises(DataError, match=r"'phase' has level '3'"):
        m.predict(new.assign(phase=3))


@pytest.mark.parametrize("family", ["gaussian", "binomial"])
def test_rows_with_missing_values_predict_nan(sleep, cbpp, cbpp_fit, family):
    if family == "gaussian":
        m = multilevel.fit(SLEEP, sleep)
        new = sleep.iloc[:5].copy()
        new.loc[1, "Days"] = np.nan
        new["Subject"] = new.Subject.astype(object)
        new.loc[3, "Subject"] = None
        full = m.fitted[:5]
    else:
        m = cbpp_fit
        new = cbpp.iloc[:5].astype({"period": object, "herd": object})
        new.loc[1, "period"] = None
        new.loc[3, "herd"] = np.nan
        full = m.fitted[:5]
    got = m.predict(new)
    assert got.shape == (5,)
    assert np.isnan(got[[1, 3]]).all()
    np.testing.assert_allclose(got[[0, 2, 4]], full[[0, 2, 4]], rtol=1e-10)
    # population level: a missing grouping value does not matter
    pop = m.predict(new, conditional=False)
    assert np.isnan(pop[1]) and np.isfinite(pop[3])


def test_predict_interval_reads_the_offset(sleep):
    m = multilevel.fit(SLEEP, sleep, offset="o")
    np.testing.assert_allclose(m.predict_interval(sleep)["fit"], m.fitted, rtol=1e-12)
