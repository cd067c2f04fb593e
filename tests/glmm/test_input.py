"""GLMM responses in every accepted form, and bad input."""

import warnings

import numpy as np
import pandas as pd
import pytest

import multilevel
from multilevel.errors import DataError, FamilyError, FormulaError, ModelError, SeparationWarning

F = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def cbpp():
    return multilevel.load_dataset("cbpp")


@pytest.fixture(scope="module")
def cbind_fit(cbpp):
    return multilevel.fit(F, cbpp, family="binomial")


def test_proportion_with_trials_equals_cbind(cbpp, cbind_fit):
    d = cbpp.assign(prop=cbpp.incidence / cbpp["size"])
    m = multilevel.fit("prop ~ period + (1 | herd)", d, family="binomial", weights="size")
    assert m.loglik == pytest.approx(cbind_fit.loglik, abs=1e-7)


def test_binary_forms_agree(cbpp):
    rows = cbpp.loc[cbpp.index.repeat(cbpp["size"])].reset_index(drop=True)
    y = np.concatenate([np.r_[np.ones(k), np.zeros(n - k)] for k, n in zip(cbpp.incidence, cbpp["size"])])
    rows["y01"] = y
    rows["ybool"] = y.astype(bool)
    rows["ystr"] = np.where(y == 1, "yes", "no")  # second level ('yes') is a success
    rows["yfac"] = pd.Categorical(np.where(y == 1, "sick", "healthy"), categories=["healthy", "sick"])
    fits = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for col in ("y01", "ybool", "ystr", "yfac"):
            fits[col] = multilevel.fit(f"{col} ~ period + (1 | herd)", rows, family="binomial")
    base = fits["y01"]
    for m in fits.values():
        np.testing.assert_allclose(m.fixef, base.fixef, rtol=1e-6)


def test_offset_in_formula_and_argument(cbpp):
    d = cbpp.assign(expo=cbpp["size"] / 10.0)
    a = multilevel.fit("incidence ~ period + offset(log(expo)) + (1 | herd)", d, family="poisson")
    b = multilevel.fit("incidence ~ period + (1 | herd)", d, family="poisson", offset=np.log(d.expo))
    assert a.loglik == pytest.approx(b.loglik, abs=1e-8)
    np.testing.assert_allclose(a.fixef, b.fixef, rtol=1e-7)


@pytest.mark.parametrize(
    "formula, family, data_fn, match",
    [
        ("y ~ x + (1 | g)", "poisson", lambda d: d.assign(y=-d.y), "non-negative"),
        ("y ~ x + (1 | g)", "poisson", lambda d: d.assign(y=d.y + 0.5), "integer"),
        ("y ~ x + (1 | g)", "binomial", lambda d: d.assign(y=d.y + 1.0), r"\[0, 1\]"),
        ("cbind(y, n - y) ~ x + (1 | g)", "binomial", lambda d: d.assign(n=d.y - 1), "non-negative"),
        ("y ~ x + (1 | g)", "Gamma", lambda d: d.assign(y=d.y - 1.0), "positive"),
        (
            "y ~ x + (1 | g)",
            "binomial",
            lambda d: d.assign(y=np.where(d.y > 0, "a", np.where(d.x > 0, "b", "c"))),
            "exactly two",
        ),
    ],
)
def test_bad_responses(formula, family, data_fn, match):
    rng = np.random.default_rng(1)
    d = pd.DataFrame(
        {
            "y": rng.poisson(1.0, 60).astype(float),
            "x": rng.normal(size=60),
            "g": np.repeat(list("abcdef"), 10),
        }
    )
    d["y"] = np.minimum(d.y, 1.0) if family == "binomial" else d.y
    with pytest.raises(DataError, match=match):
        multilevel.fit(formula, data_fn(d), family=family)


def test_cbind_needs_binomial(cbpp):
    with pytest.raises(FormulaError, match="binomial"):
        multilevel.fit(F, cbpp)


def test_agq_needs_one_grouping_factor():
    d = multilevel.load_dataset("grouseticks")
    with pytest.raises(ModelError, match="single grouping factor"):
        multilevel.fit("TICKS ~ YEAR + (1|BROOD) + (1|LOCATION)", d, family="poisson", nagq=5)


def test_unknown_family_and_link(cbpp):
    # one class for every family / link name error: a ModelError, not a DataError
    with pytest.raises(FamilyError, match=r"unknown family 'binomal'.*did you mean 'binomial'"):
        multilevel.fit(F, cbpp, family="binomal")
    with pytest.raises(FamilyError, match="not available for the binomial family; choose one of logit"):
        multilevel.fit(F, cbpp, family="binomial", link="sqrt")
    with pytest.raises(FamilyError, match=r"unknown link 'logt' for the binomial .*did you mean 'logit'"):
        multilevel.fit(F, cbpp, family="binomial", link="logt")
    assert issubclass(FamilyError, ModelError) and not issubclass(FamilyError, DataError)


def test_complete_separation_is_flagged():
    rng = np.random.default_rng(3)
    x = rng.normal(size=80)
    d = pd.DataFrame({"y": (x > 0).astype(float), "x": x, "g": np.repeat(list("abcdefgh"), 10)})
    with pytest.warns(SeparationWarning, match="separation"):
        m = multilevel.fit("y ~ x + (1 | g)", d, family="binomial")
    assert any("separation" in msg for msg in m.messages)


def test_predict_new_data(cbind_fit, cbpp):
    new = cbpp.iloc[:3].copy()
    p_resp = cbind_fit.predict(new)
    p_link = cbind_fit.predict(new, type="link")
    np.testing.assert_allclose(p_resp, 1 / (1 + np.exp(-p_link)))
    np.testing.assert_allclose(p_resp, cbind_fit.fitted[:3], rtol=1e-10)
    new.loc[:, "herd"] = "1"
    unseen = cbpp.iloc[:1].assign(herd=pd.Categorical(["99"]))
    with pytest.raises(DataError, match="new_levels"):
        cbind_fit.predict(unseen)
    pop = cbind_fit.predict(unseen, new_levels="population", type="link")
    assert pop[0] == pytest.approx(cbind_fit.fixef["Intercept"])


def test_nagq0_is_fast_first_stage(cbpp, cbind_fit):
    m0 = multilevel.fit(F, cbpp, family="binomial", nagq=0)
    assert abs(m0.loglik - cbind_fit.loglik) < 0.1
