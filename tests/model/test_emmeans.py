"""Estimated marginal means against R's emmeans (tests/data/emmeans_refs.{R,json})."""

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import multilevel
from multilevel.errors import ModelError, SingularFitWarning
from multilevel.family import get_family
from multilevel.lmm.solution import solve
from multilevel.model.emmeans import emmeans, parse_specs, reference_grid

DATA = Path(__file__).resolve().parent.parent / "data"
REFS = json.loads((DATA / "emmeans_refs.json").read_text())
_FITS: dict = {}


def _fit(key):
    if key not in _FITS:
        ref = REFS[key]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SingularFitWarning)
            _FITS[key] = multilevel.fit(
                ref["formula"], multilevel.load_dataset(ref["data"]), family=ref.get("family", "gaussian")
            )
    return _FITS[key]


def _at_lme4_theta(key):
    m, theta = _fit(key), np.atleast_1d(np.asarray(REFS[key]["theta"], dtype=float))
    f = m.objective.factor(theta)
    opt = dataclasses.replace(m.optinfo, end=tuple(theta.tolist()))
    return dataclasses.replace(m, factor=f, solution=solve(m.objective, f), optinfo=opt)


def _key(row, names):
    return tuple(str(row[n]) if not isinstance(row[n], float) else f"{row[n]:g}" for n in names)


def _compare(table, ref_rows, names, est="emmean", tol_est=1e-6, tol_se=1e-4, tol_df=1e-4):
    ours = {_key(r, names): r for _, r in table.iterrows()}
    assert len(ours) == len(ref_rows)
    lo, hi = ("lower.CL", "upper.CL") if "lower.CL" in ref_rows[0] else ("asymp.LCL", "asymp.UCL")
    ref_est = est if est in ref_rows[0] else next(k for k in ("prob", "rate", "response") if k in ref_rows[0])
    for r in ref_rows:
        o = ours[_key(r, names)]
        ours_est = o["response"] if "response" in o else o[est]
        assert ours_est == pytest.approx(r[ref_est], rel=tol_est, abs=tol_est)
        assert o["SE"] == pytest.approx(r["SE"], rel=tol_se)
        if r["df"] == "Inf":
            assert np.isinf(o["df"])
        else:
            assert o["df"] == pytest.approx(r["df"], rel=tol_df)
        assert o["lower.CL"] == pytest.approx(r[lo], rel=10 * tol_se, abs=10 * tol_se)
        assert o["upper.CL"] == pytest.approx(r[hi], rel=10 * tol_se, abs=10 * tol_se)


@pytest.mark.parametrize("ddf", ["kenward-roger", "satterthwaite"])
def test_cake_means_and_contrasts(ddf):
    m, ref = _fit("cake"), REFS["cake"][ddf]
    e = m.emmeans("recipe", ddf=ddf)
    _compare(e.table, ref["recipe"], ["recipe"])
    _compare(
        m.emmeans("~ recipe | temperature", ddf=ddf).table,
        ref["recipe_by_temperature"],
        ["recipe", "temperature"],
    )
    for adjust, rows in ref["pairwise"].items():
        c = e.contrast("pairwise", adjust=adjust)
        assert c["contrast"].tolist() == [r["contrast"] for r in rows]
        np.testing.assert_allclose(c["estimate"], [r["estimate"] for r in rows], rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(c["SE"], [r["SE"] for r in rows], rtol=1e-4)
        np.testing.assert_allclose(c["df"], [r["df"] for r in rows], rtol=1e-4)
        np.testing.assert_allclose(c["p.value"], [r["p.value"] for r in rows], rtol=1e-4, atol=1e-8)
    c = e.contrast({"AvsBC": [1, -0.5, -0.5]})
    assert c["p.value"][0] == pytest.approx(ref["custom"][0]["p.value"], rel=1e-4)
    cb = m.emmeans("recipe", by="temperature", ddf=ddf).contrast()
    rows = ref["pairwise_by"]
    assert len(cb) == len(rows)
    np.testing.assert_allclose(cb["p.value"], [r["p.value"] for r in rows], rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("ddf", ["kenward-roger", "satterthwaite"])
def test_dietox_means_weights_and_at(ddf):
    ref = REFS["dietox"][ddf]
    for m, tol in ((_fit("dietox"), 1e-4), (_at_lme4_theta("dietox"), 1e-5)):
        _compare(m.emmeans("Cu", ddf=ddf).table, ref["Cu"], ["Cu"], tol_df=tol)
        _compare(
            m.emmeans("Cu", weights="proportional", ddf=ddf).table, ref["Cu_proportional"], ["Cu"], tol_df=tol
        )
        t = m.emmeans("Cu", by="Time", at={"Time": [4, 8]}, ddf=ddf).table
        _compare(t, ref["Cu_by_Time"], ["Cu", "Time"], tol_df=tol)
        _compare(m.emmeans(["Cu", "Evit"], ddf=ddf).table, ref["Cu_Evit"], ["Cu", "Evit"], tol_df=tol)


@pytest.mark.parametrize("key", ["cbpp", "grouseticks"])
def test_glmm_means_given_lme4s_estimates_are_exact(key):
    """With lme4's beta and vcov the emmeans algebra reproduces R's to rounding."""
    ref, g = REFS[key], _fit(key)
    beta, V = np.array(ref["fixef"]), np.array(ref["vcov"])
    link = get_family(ref["family"]).link
    inf = lambda K: np.full(K.shape[0], np.inf)  # noqa: E731
    var = "period" if key == "cbpp" else "YEAR"
    for type_, rows in (("link", ref["link"]), ("response", ref["response"])):
        e = emmeans(g.spec, g.design.frame, beta, V, inf, var, link=link, type=type_)
        _compare(e.table, rows, [var], tol_est=1e-9, tol_se=1e-9)
    if key == "cbpp":
        e = emmeans(g.spec, g.design.frame, beta, V, inf, var, link=link)
        c = e.contrast("pairwise", adjust="tukey")
        np.testing.assert_allclose(c["p.value"], [r["p.value"] for r in ref["pairwise_link"]], rtol=1e-4)
        er = emmeans(g.spec, g.design.frame, beta, V, inf, var, link=link, type="response")
        c = er.contrast("pairwise", adjust="holm")
        assert c["contrast"].tolist() == [r["contrast"] for r in ref["pairwise_response"]]
        np.testing.assert_allclose(
            c["odds.ratio"], [r["odds.ratio"] for r in ref["pairwise_response"]], rtol=1e-9
        )
        np.testing.assert_allclose(c["SE"], [r["SE"] for r in ref["pairwise_response"]], rtol=1e-9)
        np.testing.assert_allclose(c["p.value"], [r["p.value"] for r in ref["pairwise_response"]], rtol=1e-6)


@pytest.mark.parametrize("key", ["cbpp", "grouseticks"])
def test_glmm_means_at_our_fit(key):
    """At our own fit: estimates to 1e-3, SEs to the Laplace vcov's known ~1.5% from lme4's."""
    ref, g = REFS[key], _fit(key)
    var = "period" if key == "cbpp" else "YEAR"
    _compare(g.emmeans(var).table, ref["link"], [var], tol_est=1e-3, tol_se=2e-2)
    _compare(g.emmeans(var, type="response").table, ref["response"], [var], tol_est=1e-3, tol_se=2e-2)


def test_reference_grid_and_specs():
    m = _fit("dietox")
    rg = reference_grid(m.spec, m.design.frame)
    assert rg.factors == ("Cu", "Evit") and rg.covariates == ("Time",)
    assert rg.grid["Time"].nunique() == 1 and len(rg.grid) == 9
    assert rg.counts.sum() == m.nobs
    assert parse_specs("~ Cu * Evit | Time", None) == (["Cu", "Evit"], ["Time"])
    assert parse_specs(["Cu"], "Evit") == (["Cu"], ["Evit"])


def test_emmeans_errors():
    m = _fit("dietox")
    with pytest.raises(ModelError, match="did you mean 'Cu'"):
        m.emmeans("cu")
    with pytest.raises(ModelError, match="weights must be one of"):
        m.emmeans("Cu", weights="cells")
    with pytest.raises(ModelError, match="did you mean 'kenward-roger'"):
        m.emmeans("Cu", ddf="kenward")
    with pytest.raises(ModelError, match="not fitted on"):
        m.emmeans("Cu", at={"Cu": ["Cu999"]})
    with pytest.raises(ModelError, match="adjust must be one of"):
        m.emmeans("Cu").contrast(adjust="scheffe")
    with pytest.raises(ModelError, match="Tukey's adjustment is for pairwise"):
        m.emmeans("Cu").contrast([[1, -1, 0]], adjust="tukey")
    with pytest.raises(ModelError, match="one weight per mean"):
        m.emmeans("Cu").contrast([[1, -1]])


def test_non_estimable_mean_is_nan():
    d = multilevel.load_dataset("dietox")
    d = d[~((d.Cu == "Cu175") & (d.Evit == "Evit200"))]  # an empty cell of Cu x Evit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = multilevel.fit("Weight ~ Time + Cu * Evit + (1 | Pig)", d)
    assert m.spec.dropped_fixed
    t = m.emmeans(["Cu", "Evit"]).table.set_index(["Cu", "Evit"])
    assert np.isnan(t.loc[("Cu175", "Evit200"), "emmean"])
    assert np.isfinite(t.loc[("Cu000", "Evit000"), "emmean"])
    tc = m.emmeans("Cu").table.set_index("Cu")
    assert np.isnan(tc.loc["Cu175", "emmean"]) and np.isfinite(tc.loc["Cu000", "emmean"])


def test_numeric_column_coded_by_C_is_a_factor_of_the_grid():
    d = multilevel.load_dataset("cbpp")
    d["p"] = d["period"].astype(int)
    g_factor = _fit("cbpp")
    g_coded = multilevel.fit("cbind(incidence, size - incidence) ~ C(p) + (1 | herd)", d, family="binomial")
    a = g_factor.emmeans("period", type="response").table
    b = g_coded.emmeans("p", type="response").table
    assert b["p"].tolist() == [1, 2, 3, 4]
    np.testing.assert_allclose(b["response"], a["response"], rtol=1e-6)
    assert g_coded.emmeans("p").contrast()["contrast"][0] == "p1 - p2"
