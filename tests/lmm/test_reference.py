"""Golden tests: every Gaussian fit in lme4_fits.json reproduced."""

import re
import warnings

import numpy as np
import pytest

import multilevel
from multilevel.errors import SingularFitWarning
from tests.conftest import lme4_name

GAUSSIAN = [
    "sleepstudy_reml",
    "sleepstudy_ml",
    "sleepstudy_uncorr",
    "dyestuff_reml",
    "dyestuff2_singular",
    "penicillin_crossed",
    "pastes_nested",
    "radon_intercept",
    "radon_slope",
    "insteval_ml",
]

_FITS: dict = {}


def _fit(ref):
    key = ref["id"]
    if key not in _FITS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SingularFitWarning)
            _FITS[key] = multilevel.fit(
                ref["formula"], multilevel.load_dataset(ref["data"]), reml=ref["REML"]
            )
    return _FITS[key]


@pytest.fixture(params=GAUSSIAN)
def case(request, lme4_refs):
    ref = lme4_refs[request.param]
    return ref, _fit(ref)


def test_criterion(case):
    ref, m = case
    target = ref["REMLcrit"] if ref["REML"] else ref["deviance"]
    got = m.reml_criterion if ref["REML"] else m.deviance
    # equal within 1e-6 relative, or lower (lme4 sometimes stops early)
    assert got <= target * (1 + 1e-6)
    assert got >= target - abs(target) * 1e-4
    assert m.loglik == pytest.approx(ref["logLik"], rel=1e-6, abs=1e-6)
    assert m.aic == pytest.approx(ref["AIC"], rel=1e-6)
    assert m.bic == pytest.approx(ref["BIC"], rel=1e-6)
    assert m.nobs == ref["nobs"]


def test_fixed_effects(case):
    ref, m = case
    got = {lme4_name(k): v for k, v in m.fixef.items()}
    se = {lme4_name(k): v for k, v in m.fixef_se.items()}
    assert set(got) == set(ref["fixef"])
    for k, v in ref["fixef"].items():
        assert got[k] == pytest.approx(v, rel=1e-4, abs=1e-8)
        assert se[k] == pytest.approx(ref["fixef_se"][k], rel=1e-4)


def test_variance_components(case):
    ref, m = case
    vc = m.varcorr
    assert m.sigma == pytest.approx(ref["sigma"], rel=1e-4)
    for row in ref["varcor"]:
        grp = re.sub(r"\.\d+$", "", row["grp"])
        if grp == "Residual":
            sel = vc[vc.group == "Residual"]
        else:
            t1 = row["var1"]
            t2 = row["var2"]
            mask = (vc.group == grp) & (
                vc.term1.map(lambda s: lme4_name(s) if isinstance(s, str) else s) == t1
            )
            if t2 is None:
                mask &= vc.term2.isna()
            else:
                mask &= vc.term2.map(lambda s: lme4_name(s) if isinstance(s, str) else s) == t2
            sel = vc[mask]
        assert len(sel) == 1, row
        scale = max(abs(row["vcov"]), 1e-8)
        assert sel.variance.iloc[0] == pytest.approx(row["vcov"], rel=1e-4, abs=1e-4 * scale + 1e-10)
        assert sel.sd_or_corr.iloc[0] == pytest.approx(row["sdcor"], rel=1e-4, abs=1e-6)


def test_theta(case):
    ref, m = case
    np.testing.assert_allclose(m.theta, np.atleast_1d(ref["theta"]), rtol=1e-3, atol=1e-5)


def test_conditional_modes_and_sds(case):
    ref, m = case
    if "ranef" not in ref:
        pytest.skip("reference has no conditional modes (large model)")
    r = ref["ranef"]
    for grp in set(r["grpvar"]):
        idx = [i for i, g in enumerate(r["grpvar"]) if g == grp]
        ours = m.ranef[grp]
        ours_sd = m.ranef_sd[grp]
        cv = np.array([r["condval"][i] for i in idx])
        cs = np.array([r["condsd"][i] for i in idx])
        got_v = np.array([ours.loc[r["level"][i], _our_term(r["term"][i])] for i in idx])
        got_s = np.array([ours_sd.loc[r["level"][i], _our_term(r["term"][i])] for i in idx])
        scale = np.max(np.abs(cv))
        np.testing.assert_allclose(got_v, cv, rtol=1e-3, atol=1e-3 * scale)
        np.testing.assert_allclose(got_s, cs, rtol=1e-3)


def _our_term(t):
    return "Intercept" if t == "(Intercept)" else t


def test_satterthwaite_df(case):
    ref, m = case
    if "satterthwaite_df" not in ref:
        pytest.skip("no Satterthwaite reference")
    for k, v in ref["satterthwaite_df"].items():
        ours = {lme4_name(n): d for n, d in m.df.items()}
        assert ours[k] == pytest.approx(v, rel=1e-2)


def test_singular_flag(case):
    ref, m = case
    assert m.singular == ref["singular"]
    assert m.converged
