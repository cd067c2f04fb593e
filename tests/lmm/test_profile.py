"""Profiles and intervals of linear mixed models against lme4's ``confint(method = "profile")``.

lme4 interpolates a spline through its profile points; ours are roots of zeta itself,
so where the two differ the test shows ours sit at |zeta| = z and lme4's do not.
"""

import json
import math
import warnings

import numpy as np
import pytest
from scipy import stats

import multilevel
from multilevel.errors import ModelError
from multilevel.optim.profile import ZetaTrace

from ..conftest import DATA, lme4_name

REFS = json.loads((DATA / "lme4_fits.json").read_text())
EXTRA = json.loads((DATA / "lme4_compare_extra.json").read_text())
INFERENCE = json.loads((DATA / "lme4_inference.json").read_text())
CASES = {
    "sleepstudy_reml": "sleepstudy",
    "sleepstudy_ml": "sleepstudy",
    "sleepstudy_uncorr": "sleepstudy",
    "dyestuff_reml": "Dyestuff",
    "dyestuff2_singular": "Dyestuff2",
    "penicillin_crossed": "Penicillin",
    "pastes_nested": "Pastes",
    "radon_intercept": "radon",
    "radon_slope": "radon",
}
Z95 = float(stats.norm.ppf(0.975))


def _fit(formula, data, reml=True):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return multilevel.fit(formula, multilevel.load_dataset(data), reml=reml)


def _check(ci, rows, rel=2e-3):
    assert [r["par"] for r in rows] == [
        n if n.startswith(("sd_", "cor_")) or n == "sigma" else lme4_name(n) for n in ci.index
    ]
    for r, (_, got) in zip(rows, ci.iterrows()):
        for side in ("lower", "upper"):
            want = r[side]
            assert got[side] == pytest.approx(want, rel=rel, abs=1e-12), (r["par"], side)


@pytest.fixture(scope="module")
def intervals():
    out = {}
    for key, data in CASES.items():
        r = REFS[key]
        m = _fit(r["formula"], data, r["REML"])
        out[key] = (m, m.confint())
    return out


@pytest.mark.parametrize("key", list(CASES))
def test_profile_intervals_match_lme4(intervals, key):
    _, ci = intervals[key]
    assert ci.attrs == {"level": 0.95, "method": "profile"}
    _check(ci, REFS[key]["profile_ci"])


def test_the_inference_reference_too(intervals):
    _check(intervals["sleepstudy_reml"][1], INFERENCE["sleepstudy_profile"]["ci"], rel=1e-4)


def test_ninety_percent_intervals():
    r = EXTRA["penicillin_profile_90"]
    ci = _fit(r["formula"], "Penicillin").confint(level=0.9)
    assert ci.attrs["level"] == 0.9
    _check(ci, r["ci"], rel=1e-4)


@pytest.mark.parametrize("key", ["sleepstudy_reml", "dyestuff_reml", "dyestuff2_singular", "pastes_nested"])
def test_ours_sit_on_the_level_and_lme4s_where_they_differ_do_not(intervals, key):
    """Every finite, interior limit has |zeta| = z to 1e-6 (a fresh profile evaluation);
    where lme4's limit differs from ours by more than 1e-5 relative, lme4's zeta is off
    the level by more than ours."""
    m, ci = intervals[key]
    prof = m._profiler()
    for i, (name, row) in enumerate(ci.iterrows()):
        r = REFS[key]["profile_ci"][i]
        for d, side in ((-1, "lower"), (1, "upper")):
            v = row[side]
            if v in (prof.lower[i], prof.upper[i]):
                continue
            zeta_ours = ZetaTrace(prof, i).zeta(v)
            assert abs(zeta_ours - d * Z95) < 1e-6, (name, side)
            if abs(v / r[side] - 1) > 1e-5:
                zeta_lme4 = ZetaTrace(prof, i).zeta(r[side])
                assert abs(zeta_lme4 - d * Z95) > 10 * abs(zeta_ours - d * Z95), (name, side)


def test_bounds(intervals):
    """An SD's lower limit is 0 and a correlation's are -1 and 1 where the profile does
    not reach -+ z before them."""
    ci = intervals["radon_slope"][1]
    assert tuple(ci.loc["cor_basement.(Intercept)|county"]) == (-1.0, 1.0)
    assert ci.loc["sd_basement|county", "lower"] == 0.0
    assert intervals["dyestuff2_singular"][1].loc["sd_(Intercept)|Batch", "lower"] == 0.0
    assert intervals["pastes_nested"][1].loc["sd_(Intercept)|batch", "lower"] == 0.0


def test_reml_fits_are_profiled_by_ml_as_lme4(intervals):
    """lme4's devfun2 refits a REML fit by ML: the intervals of the REML and ML fits agree."""
    a, b = intervals["sleepstudy_reml"][1], intervals["sleepstudy_ml"][1]
    assert np.allclose(a.to_numpy(), b.to_numpy(), rtol=1e-6)


def test_wald_intervals_as_lme4(intervals):
    m, _ = intervals["sleepstudy_reml"]
    ci = m.confint(method="Wald", level=0.9)
    assert ci.attrs["method"] == "wald"
    assert ci.iloc[:4].isna().all().all()  # no Wald intervals for variance parameters
    z = stats.norm.ppf(0.95)
    assert ci.loc["Days", "lower"] == pytest.approx(m.fixef["Days"] - z * m.fixef_se["Days"], rel=1e-12)
    assert list(m.confint(parm="beta_", method="wald").index) == ["Intercept", "Days"]


def test_parm_selects_and_orders(intervals):
    m, ci = intervals["sleepstudy_reml"]
    sub = m.confint(parm=["Days", "sigma"])
    assert list(sub.index) == ["Days", "sigma"]
    assert np.allclose(sub.to_numpy(), ci.loc[["Days", "sigma"]].to_numpy(), rtol=1e-7)
    assert list(m.confint(parm="theta_").index) == list(ci.index[:4])
    assert list(m.confint(parm=4).index) == ["Intercept"]


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"method": "prof"}, "did you mean 'profile'"),
        ({"method": "bogus"}, "must be one of profile, wald, boot"),
        ({"level": 95}, "level=0.95"),
        ({"level": 0}, "between 0 and 1"),
        ({"level": "high"}, "must be a number"),
        ({"parm": "Dyas"}, "did you mean 'Days'"),
        ({"parm": "sd_Days"}, "'sd_Days|Subject'"),
        ({"parm": 17}, "positions 0..5"),
        ({"parm": [True]}, "parm must name parameters"),
    ],
)
def test_bad_arguments(intervals, kwargs, needle):
    m, _ = intervals["sleepstudy_reml"]
    with pytest.raises(ModelError, match=needle.replace("(", r"\(").replace("|", r"\|")):
        m.confint(**kwargs)


def test_profile_record(intervals):
    m, ci = intervals["sleepstudy_reml"]
    pr = m.profile(points=5)
    assert pr.names == tuple(ci.index)
    assert set(pr.table.columns) == {"parameter", "value", "zeta", *pr.names}
    for name in pr.names:
        tr = pr.zeta(name)
        assert len(tr) == 11  # 5 on each side and the estimate
        assert np.all(np.diff(tr["zeta"]) > 0)  # zeta increases with the parameter
        assert tr["zeta"].abs().min() == 0.0
    # out to lme4's cutoff sqrt(qchisq(0.99, 6)), or the bound
    cut = math.sqrt(stats.chi2.ppf(0.99, 6))
    assert pr.zeta("sigma")["zeta"].iloc[-1] == pytest.approx(cut, abs=1e-6)
    assert pr.zeta("cor_Days.(Intercept)|Subject")["value"].iloc[-1] == 1.0  # the bound first
    # the held parameter is its own column at every point; the ML deviance is the minimum
    rows = pr.table[pr.table.parameter == "Days"]
    assert np.allclose(rows["value"], rows["Days"])
    ml = _fit("Reaction ~ Days + (Days | Subject)", "sleepstudy", reml=False)
    assert pr.deviance == pytest.approx(ml.deviance, rel=1e-10)
    assert pr.estimate["sigma"] == pytest.approx(ml.sigma, rel=1e-5)
    assert np.allclose(pr.confint().to_numpy(), ci.to_numpy(), rtol=1e-7)
    with pytest.raises(ModelError, match="was not profiled"):
        multilevel.fit("Yield ~ 1 + (1 | Batch)", multilevel.load_dataset("Dyestuff")).profile("sigma").zeta(
            "sd_(Intercept)|Batch"
        )
    with pytest.raises(ModelError, match="points must be a positive integer"):
        m.profile(points=0)


def test_known_residual_se_has_no_sigma():
    """y | se(s): the residual scale is known, so no sigma is profiled; the SD of the
    schools is estimated as 0 and its lower limit is 0."""
    m = _fit("y | se(sigma) ~ 1 + (1 | school)", "eight_schools")
    ci = m.confint()
    assert list(ci.index) == ["sd_(Intercept)|school", "Intercept"]
    assert ci.loc["sd_(Intercept)|school", "lower"] == 0.0
    assert 5 < ci.loc["sd_(Intercept)|school", "upper"] < 30
    lo, hi = ci.loc["Intercept"]
    assert lo < m.fixef["Intercept"] < hi


def test_prior_weights():
    """With prior weights lme4 1.1-31 gets the variance parameters and sigma (ours agree to
    1e-4) but not the fixed effects: its limits for them have |zeta| far below z ("bad
    spline fit ... falling back to linear interpolation"), ours sit on it, near Wald's."""
    r = EXTRA["sleepstudy_weighted_profile"]
    d = multilevel.load_dataset("sleepstudy")
    d["w"] = 1 + d["Days"] % 3
    m = multilevel.fit(r["formula"], d, weights="w")
    ci = m.confint()
    _check(ci.iloc[:4], r["ci"][:4], rel=1e-4)
    prof = m._profiler()
    wald = m.confint(method="wald")
    for i, name in enumerate(["Intercept", "Days"], start=4):
        for d_, side in ((-1, "lower"), (1, "upper")):
            assert abs(ZetaTrace(prof, i).zeta(ci.loc[name, side]) - d_ * Z95) < 1e-6
            assert abs(ZetaTrace(prof, i).zeta(r["ci"][i][side])) < 0.5 * Z95
            assert ci.loc[name, side] == pytest.approx(wald.loc[name, side], rel=0.02)
