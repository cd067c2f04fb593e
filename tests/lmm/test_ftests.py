"""F tests after an LMM fit: lmerTest's anova tables and contests, pbkrtest's KRmodcomp.

References: tests/data/lmertest_ftests.json (made by tests/data/lmertest_ftests.R) and
the dietox case of tests/data/lme4_inference.json (a copy of the shared reference).
"""

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import multilevel
from multilevel.errors import SingularFitWarning
from multilevel.lmm.solution import solve

DATA = Path(__file__).resolve().parent.parent / "data"
REFS = json.loads((DATA / "lmertest_ftests.json").read_text())
CASES = [k for k in REFS if not k.startswith("insteval")]
_FITS: dict = {}


def _fit(formula, data, **kw):
    key = (formula, data, tuple(sorted(kw.items())))
    if key not in _FITS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SingularFitWarning)
            _FITS[key] = multilevel.fit(formula, multilevel.load_dataset(data), **kw)
    return _FITS[key]


def at_theta(fit, theta):
    """The fit moved to another theta (lme4's optimum), to check the algebra exactly."""
    theta = np.atleast_1d(np.asarray(theta, dtype=float))
    f = fit.objective.factor(theta)
    opt = dataclasses.replace(fit.optinfo, end=tuple(theta.tolist()))
    return dataclasses.replace(fit, factor=f, solution=solve(fit.objective, f), optinfo=opt)


def _rel(a, b):
    return abs(a / b - 1.0) if b != 0 else abs(a)


@pytest.fixture(params=CASES)
def case(request):
    ref = REFS[request.param]
    return ref, _fit(ref["formula"], ref["data"])


@pytest.mark.parametrize("ddf, key", [("satterthwaite", "satterthwaite"), ("kenward-roger", "kenward_roger")])
def test_anova_matches_lmertest(case, ddf, key):
    ref, m = case
    tab = m.anova(ddf=ddf)
    assert list(tab.index) == [r["term"] for r in ref[key]]
    for row in ref[key]:
        ours = tab.loc[row["term"]]
        assert ours["NumDF"] == row["NumDF"]
        assert _rel(ours["DenDF"], row["DenDF"]) < 1e-4, row
        assert _rel(ours["F value"], row["F"]) < 1e-4, row
        assert ours["Pr(>F)"] == pytest.approx(row["p"], rel=1e-3, abs=1e-12)


@pytest.mark.parametrize(
    "ddf, key, tol", [("satterthwaite", "satterthwaite", 1e-5), ("kenward-roger", "kenward_roger", 1e-7)]
)
def test_anova_at_lme4_theta_is_exact(case, ddf, key, tol):
    """At lme4's own estimates the df agree far beyond the optimizers' differences."""
    ref, m = case
    tab = at_theta(m, ref["theta"]).anova(ddf=ddf)
    for row in ref[key]:
        assert _rel(tab.loc[row["term"], "DenDF"], row["DenDF"]) < tol, row
        assert _rel(tab.loc[row["term"], "F value"], row["F"]) < 1e-6, row


def test_type3_hypotheses_are_lmertests(case):
    from multilevel.model.hypotheses import term_hypotheses

    ref, m = case
    ours = term_hypotheses(m.spec, m.design.X, m.design.frame)
    for term, L in ref["hypotheses"].items():
        np.testing.assert_allclose(ours[term], np.atleast_2d(np.array(L, dtype=float)), atol=1e-7)


def test_krmodcomp_matches_pbkrtest(case):
    ref, m = case
    small = _fit(ref["reduced"], ref["data"])
    k = ref["krmodcomp"]
    for t in (m.krmodcomp(small), small.krmodcomp(m)):  # either order, as pbkrtest
        assert t.num_df == k["ndf"]
        assert _rel(t.den_df, k["ddf"]) < 1e-4
        assert _rel(t.F, k["F"]) < 1e-4
        assert t.f_scaling == pytest.approx(k["Fscaling"], rel=1e-6)
        assert t.p_value == pytest.approx(k["p"], rel=1e-3)


def test_contest_matches_lmertest():
    for key in ("dietox_interaction", "cbpp_period_lmm"):
        ref = REFS[key]
        m = at_theta(_fit(ref["formula"], ref["data"]), ref["theta"])
        for c in ref["contest"]:
            L = np.atleast_2d(np.array(c["L"], dtype=float))
            for ddf, name, tol in (
                ("satterthwaite", "satterthwaite", 1e-5),
                ("kenward-roger", "kenward_roger", 1e-7),
            ):
                t, r = m.test(L, ddf=ddf), c[name]
                assert t.num_df == r["NumDF"]
                assert _rel(t.den_df, r["DenDF"]) < tol
                assert _rel(t.F, r["F"]) < 1e-6


def test_shared_dietox_reference():
    ref = json.loads((DATA / "lme4_inference.json").read_text())["dietox_cu_ftests"]
    m = _fit(ref["formula"], "dietox")
    for ddf, key in (("satterthwaite", "satterthwaite_type3"), ("kenward-roger", "kenward_roger_type3")):
        tab = m.anova(ddf=ddf)
        for row in ref[key]:
            assert tab.loc[row["term"], "NumDF"] == row["NumDF"]
            assert _rel(tab.loc[row["term"], "DenDF"], row["DenDF"]) < 1e-4
            assert _rel(tab.loc[row["term"], "F value"], row["F"]) < 1e-4
    t = m.krmodcomp(_fit(ref["reduced"], "dietox"))
    k = ref["krmodcomp"]
    assert (t.num_df, _rel(t.den_df, k["ddf"]) < 1e-4, _rel(t.F, k["F"]) < 1e-4) == (k["ndf"], True, True)
    assert tab.attrs["heading"] == "Type III Analysis of Variance Table with Kenward-Roger's method"


def test_kenward_roger_df_per_coefficient(lme4_refs):
    from tests.conftest import lme4_name

    for key, ref in lme4_refs.items():
        if not ref.get("kenward_roger_df"):
            continue
        m = _fit(ref["formula"], ref["data"], reml=ref["REML"])
        for j, name in enumerate(m.spec.fixed_names):
            L = np.zeros((1, m.spec.p))
            L[0, j] = 1.0
            assert (
                _rel(m.test(L, ddf="kenward-roger").den_df, ref["kenward_roger_df"][lme4_name(name)]) < 1e-4
            ), key


def test_single_term_uses_type1_and_heading():
    ref = REFS["cbpp_period_lmm"]
    tab = _fit(ref["formula"], ref["data"]).anova()
    assert tab.attrs["heading"] == "Type I Analysis of Variance Table with Satterthwaite's method"
    assert list(tab.columns) == ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]
    assert tab.loc["period", "Mean Sq"] * 3 == pytest.approx(tab.loc["period", "Sum Sq"])


def test_contrast_by_names_and_term_and_rhs():
    m = _fit("Weight ~ Time + Cu + (1 | Pig)", "dietox")
    by_term = m.test("Cu")
    by_names = m.test({"Cu[T.Cu035]": 1.0}).F, m.test([[0, 0, 1, 0]]).F
    assert by_names[0] == pytest.approx(by_names[1])
    assert by_term.F == pytest.approx(m.anova().loc["Cu", "F value"])
    est = m.fixef["Time"]
    assert m.test({"Time": 1.0}, rhs=est).F == pytest.approx(0.0, abs=1e-12)
    assert m.test({"Time": 1.0}, rhs=est, ddf="kenward-roger").F == pytest.approx(0.0, abs=1e-12)
