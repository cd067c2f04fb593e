"""Likelihood-ratio tables (multilevel.anova) against lme4's ``anova()``, and their checks."""

import json
import math
import warnings

import numpy as np
import pandas as pd
import pytest

import multilevel
from multilevel.errors import ModelError

from ..conftest import DATA

INFERENCE = json.loads((DATA / "lme4_inference.json").read_text())
EXTRA = json.loads((DATA / "lme4_compare_extra.json").read_text())
SLEEP = multilevel.load_dataset("sleepstudy")
CBPP = multilevel.load_dataset("cbpp")


def _fit(formula, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return multilevel.fit(formula, data, **kw)


def _check_table(table, ref, rel=1e-6, chisq_abs=1e-4, p_rel=1e-6):
    for col in ("npar", "AIC", "BIC", "logLik", "deviance"):
        if col in ref:
            assert table[col].to_numpy(dtype=float) == pytest.approx(ref[col], rel=rel), col
    chisq = np.atleast_1d(ref["Chisq"])
    p = np.atleast_1d(ref["p"])
    assert table["Chisq"].to_numpy(dtype=float)[1:] == pytest.approx(chisq, abs=chisq_abs)
    assert table["Pr(>Chisq)"].to_numpy(dtype=float)[1:] == pytest.approx(p, rel=p_rel)
    assert list(table["Df"][1:]) == list(np.atleast_1d(ref.get("Df", np.diff(ref["npar"]))))


def test_fixed_effect_test_refits_by_ml():
    r = INFERENCE["sleepstudy_days_lrt"]
    m0, m1 = (_fit(f, SLEEP) for f in r["formulas"])
    a = multilevel.anova(m0, m1, names=["m0", "m1"])
    _check_table(a.table, r)
    assert a.refitted == ("m0", "m1") and a.criterion == "ML"
    text = str(a)
    assert "refitted with ML (instead of REML)" in text and "1.226e-06 ***" in text
    assert m0.reml and m1.reml  # the fits given are left as they are


def test_reml_comparison_without_refit():
    r = INFERENCE["sleepstudy_corr_lrt_reml"]
    a = multilevel.anova(*(_fit(f, SLEEP) for f in r["formulas"]), refit=False)
    _check_table(a.table, r)
    assert a.criterion == "REML" and a.refitted == ()
    assert "logLik: REML" in str(a)


def test_glmm_comparison():
    """lme4's default PIRLS stops short of the modes (tolPwrss = 1e-7), lowering both its
    Laplace log-likelihoods by ~2e-4 and its Chisq by 1.3e-4; with glmerControl(tolPwrss =
    1e-13) lme4 reaches ours."""
    r = EXTRA["cbpp_lrt_pirls"]
    a = multilevel.anova(*(_fit(f, CBPP, family="binomial") for f in r["formulas"]))
    _check_table(a.table, r, rel=1e-8, chisq_abs=1e-6)
    ref = INFERENCE["cbpp_period_lrt"]  # lme4's defaults
    assert np.all(a.table["logLik"].to_numpy() >= np.array(ref["logLik"]))
    _check_table(a.table, ref, rel=5e-6, chisq_abs=2e-4, p_rel=1e-4)
    assert a.criterion == "Laplace"


def test_glmm_quadrature_comparison():
    fits = [_fit(f, CBPP, family="binomial", nagq=25) for f in EXTRA["cbpp_lrt_pirls"]["formulas"]]
    a = multilevel.anova(*fits)
    assert a.criterion == "adaptive Gauss-Hermite quadrature (nagq = 25)"
    assert a.table["Chisq"].iloc[1] == pytest.approx(2 * (fits[1].loglik - fits[0].loglik), rel=1e-12)


def test_three_models_ordered_by_npar():
    r = EXTRA["sleepstudy_three_lrt"]
    fits = [_fit(f, SLEEP) for f in r["formulas"]]
    a = multilevel.anova(fits[2], fits[0], fits[1], names=["full", "intercept", "uncorr"])
    assert list(a.table.index) == ["intercept", "uncorr", "full"]
    _check_table(a.table, r)
    assert a.formulas == tuple(r["formulas"])


def test_chi_bar_square_halves_the_p_value_of_one_variance():
    r = EXTRA["pastes_batch_lrt_reml"]
    pastes = multilevel.load_dataset("Pastes")
    fits = [_fit(f, pastes) for f in r["formulas"]]
    plain = multilevel.anova(*fits, refit=False)
    _check_table(plain.table, r)
    bar = multilevel.anova(*fits, refit=False, boundary="chibar")
    assert bar.table["Pr(>Chisq)"].iloc[1] == pytest.approx(r["p_chibar"], rel=1e-6)
    assert bar.tests[1].startswith("chi-bar-square")
    assert "Self & Liang 1987" in str(bar)


def test_chi_bar_square_of_a_slope_with_its_correlation():
    """Adding (Days | Subject) to (1 | Subject): one SD and one correlation, Df 2, the
    mixture 0.5 chi2(1) + 0.5 chi2(2) (Stram & Lee 1994)."""
    fits = [_fit(f, SLEEP) for f in ("Reaction ~ Days + (1 | Subject)", "Reaction ~ Days + (Days | Subject)")]
    a = multilevel.anova(*fits, refit=False, boundary="chibar")
    x = a.table["Chisq"].iloc[1]
    from scipy import stats

    assert a.table["Pr(>Chisq)"].iloc[1] == pytest.approx(
        0.5 * stats.chi2.sf(x, 1) + 0.5 * stats.chi2.sf(x, 2)
    )


def test_chi_bar_square_not_for_fixed_effects():
    r = INFERENCE["sleepstudy_days_lrt"]
    a = multilevel.anova(*(_fit(f, SLEEP) for f in r["formulas"]), boundary="chibar")
    assert a.tests[1] == "chi-square(Df)"
    assert a.table["Pr(>Chisq)"].iloc[1] == pytest.approx(r["p"], rel=1e-6)
    assert "every p-value is chi-square(Df)" in str(a)


def test_to_dict_is_plain_json():
    r = INFERENCE["sleepstudy_days_lrt"]
    d = multilevel.anova(*(_fit(f, SLEEP) for f in r["formulas"])).to_dict()
    json.dumps(d, allow_nan=False)
    assert d["models"][0]["Chisq"] is None and d["models"][1]["Df"] == 1
    assert d["refitted"] == ["m1", "m2"]


# ---- failure paths ---------------------------------------------------------------------
def test_single_model():
    with pytest.raises(ModelError, match="two or more nested models"):
        multilevel.anova(_fit("Reaction ~ Days + (1 | Subject)", SLEEP))


def test_models_on_different_rows():
    d = SLEEP.copy()
    d["z"] = np.where(np.arange(len(d)) % 10 == 0, np.nan, 1.0) * np.arange(len(d))
    m0 = _fit("Reaction ~ Days + (1 | Subject)", d)
    m1 = _fit("Reaction ~ Days + z + (1 | Subject)", d)
    with pytest.raises(ModelError, match="not fitted to the same rows: m1 has 180 observations and m2 162"):
        multilevel.anova(m0, m1)


def test_models_of_different_responses():
    d = SLEEP.assign(log_reaction=np.log(SLEEP["Reaction"]))
    m0 = _fit("log_reaction ~ 1 + (1 | Subject)", d)
    m1 = _fit("Reaction ~ Days + (1 | Subject)", d)
    with pytest.raises(ModelError, match="different responses"):
        multilevel.anova(m0, m1)


def test_non_nested_fixed_effects():
    d = SLEEP.assign(w=np.sin(SLEEP["Days"]))
    m0 = _fit("Reaction ~ w + (1 | Subject)", d)
    m1 = _fit("Reaction ~ Days + (Days | Subject)", d)
    with pytest.raises(ModelError, match=r"fixed effects .* not in the span"):
        multilevel.anova(m0, m1)


def test_nested_by_span_not_names():
    """A factor's dummies span a linear trend in it: nested although the names differ."""
    d = SLEEP.assign(day=SLEEP["Days"].astype(str))
    m0 = _fit("Reaction ~ Days + (1 | Subject)", d)
    m1 = _fit("Reaction ~ day + (1 | Subject)", d)
    a = multilevel.anova(m0, m1)
    assert int(a.table["Df"].iloc[1]) == 8


def test_non_nested_random_effects():
    d = SLEEP.assign(half=(SLEEP["Days"] >= 5).astype(str))
    m0 = _fit("Reaction ~ Days + (1 | half)", d)
    m1 = _fit("Reaction ~ Days + (Days | Subject)", d)
    with pytest.raises(ModelError, match="grouping factor 'half' is not one of the larger"):
        multilevel.anova(m0, m1)
    m2 = _fit("Reaction ~ Days + (Days | Subject)", d)
    m3 = _fit("Reaction ~ Days + (1 | Subject) + (0 + Days | Subject) + (Days | half)", d)
    with pytest.raises(ModelError, match=r"term \(Days \| Subject\) is not inside one term on .Subject."):
        multilevel.anova(m2, m3)


def test_same_number_of_parameters():
    m0 = _fit("Reaction ~ Days + (1 | Subject)", SLEEP)
    m1 = _fit("Reaction ~ 1 + (Days || Subject)", SLEEP)
    with pytest.raises(ModelError, match="same number of parameters"):
        multilevel.anova(m0, m1)


def test_lmm_and_glmm_mixed():
    d = CBPP.assign(rate=CBPP["incidence"] / CBPP["size"])
    m0 = _fit("rate ~ 1 + (1 | herd)", d)
    m1 = _fit("cbind(incidence, size - incidence) ~ period + (1 | herd)", d, family="binomial")
    with pytest.raises(ModelError, match="m1 is a linear mixed model and m2 a binomial GLMM"):
        multilevel.anova(m0, m1)


def test_glmms_of_different_approximations():
    f0, f1 = EXTRA["cbpp_lrt_pirls"]["formulas"]
    m0 = _fit(f0, CBPP, family="binomial")
    m1 = _fit(f1, CBPP, family="binomial", nagq=25)
    with pytest.raises(ModelError, match=r"nagq=1.*nagq=25"):
        multilevel.anova(m0, m1)


def test_reml_without_refit_needs_the_same_fixed_effects():
    r = INFERENCE["sleepstudy_days_lrt"]
    fits = [_fit(f, SLEEP) for f in r["formulas"]]
    with pytest.raises(ModelError, match="refit=False compares REML criteria"):
        multilevel.anova(*fits, refit=False)
    ml = _fit(r["formulas"][1], SLEEP, reml=False)
    with pytest.raises(ModelError, match="some fits are REML and some ML"):
        multilevel.anova(fits[0], ml, refit=False)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"boundary": "chibarsq"}, "boundary must be one of"),
        ({"names": ["a"]}, "names must give 2 distinct labels"),
        ({"names": ["a", "a"]}, "distinct"),
        ({"refit": "yes"}, "refit must be True or False"),
    ],
)
def test_bad_arguments(kwargs, needle):
    fits = [_fit(f, SLEEP) for f in INFERENCE["sleepstudy_days_lrt"]["formulas"]]
    with pytest.raises(ModelError, match=needle):
        multilevel.anova(*fits, **kwargs)


def test_not_a_fit():
    with pytest.raises(ModelError, match="m2 is a DataFrame"):
        multilevel.anova(_fit("Reaction ~ Days + (1 | Subject)", SLEEP), pd.DataFrame())


def test_print_matches_lme4_layout():
    r = INFERENCE["sleepstudy_days_lrt"]
    text = str(multilevel.anova(*(_fit(f, SLEEP) for f in r["formulas"]), names=["fm0", "fm1"]))
    lines = text.splitlines()
    assert lines[:3] == ["Models:", f"fm0: {r['formulas'][0]}", f"fm1: {r['formulas'][1]}"]
    assert lines[3].split() == ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)"]
    assert lines[4].split() == ["fm0", "5", "1785.5", "1801.4", "-887.74", "1775.5"]
    assert lines[5].split() == [
        "fm1",
        "6",
        "1763.9",
        "1783.1",
        "-875.97",
        "1751.9",
        "23.537",
        "1",
        "1.226e-06",
        "***",
    ]
    assert not math.isnan(float(lines[5].split()[6]))
