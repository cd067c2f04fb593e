"""Nonlinear mixed models in full Bayes: brms's Orange posterior, names, priors, predictions."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import multilevel
from multilevel.errors import ModelError

DATA = Path(__file__).parent.parent / "data"
FORMULA = "circumference ~ Asym / (1 + exp((xmid - age) / scal))"
PARAMS = {"Asym": "1 + (1 | Tree)", "xmid": "1", "scal": "1"}
START = {"Asym": 200, "xmid": 700, "scal": 350}
# the priors of tests/data/brms/brms_refs.R (brms names the coefficient classes by nlpar)
PRIORS = {
    "b_Asym": "normal(200, 50)",
    "b_xmid": "normal(700, 200)",
    "b_scal": "normal(350, 100)",
    "sd_Asym": "student_t(3, 0, 40)",
    "sigma": "student_t(3, 0, 20)",
}
BRMS_NAMES = {
    "Asym_Intercept": "b_Asym_Intercept",
    "xmid_Intercept": "b_xmid_Intercept",
    "scal_Intercept": "b_scal_Intercept",
    "sd_Tree__Asym_Intercept": "sd_Tree__Asym_Intercept",
    "sigma": "sigma",
}


@pytest.fixture(scope="module")
def orange() -> pd.DataFrame:
    return pd.read_csv(DATA / "Orange.csv")


@pytest.fixture(scope="module")
def brms() -> dict:
    return json.loads((DATA / "brms" / "brms_refs.json").read_text())


@pytest.fixture(scope="module")
def post(orange):
    return multilevel.sample(
        FORMULA,
        orange,
        params=PARAMS,
        start=START,
        priors=PRIORS,
        chains=4,
        draws=4000,
        warmup=1000,
        seed=3,
        progress=False,
        target_accept=0.95,
    )


def mc_z(summ: pd.DataFrame, ref: dict, ours: str, col: str) -> float:
    """(ours - brms) in Monte Carlo SEs of the difference (each side's own MCSE)."""
    r = next(s for s in ref["summary"] if s["variable"] == BRMS_NAMES[ours])
    if col == "mean":
        se = np.hypot(summ.at[ours, "mcse_mean"], r["mcse_mean"])
        return float((summ.at[ours, "mean"] - r["mean"]) / se)
    se = np.hypot(r["mcse_sd"], r["mcse_sd"] * np.sqrt(r["ess_bulk"] / summ.at[ours, "ess_bulk"]))
    return float((summ.at[ours, "sd"] - r["sd"]) / se)


def test_orange_posterior_matches_brms(post, brms):
    assert post.divergences < 5  # of 16,000 draws (brms: 0 of 20,000)
    summ = post.summary(group_effects=False)
    assert list(summ.index) == list(BRMS_NAMES)
    assert summ["r_hat"].max() < 1.01
    for name in BRMS_NAMES:
        for col in ("mean", "sd"):
            z = mc_z(summ, brms["orange"], name, col)
            assert abs(z) < 3.5, (name, col, z)


def test_orange_surface(post, orange):
    d = post.draws()
    assert "r_Tree__Asym[1,Intercept]" in d and d["sigma"].shape == (4, 4000)
    assert post.prior_table().loc["sd_Tree__Asym_Intercept", "source"] == "user"
    text = str(post)
    assert "Asym ~ 1 + (1 | Tree)" in text and "sd_Tree__Asym_Intercept" in text
    json.dumps(post.to_dict())
    fitted = post.predict()
    assert fitted.shape == (35, 4) and np.corrcoef(fitted["mean"], orange["circumference"])[0, 1] > 0.99
    new = pd.DataFrame({"age": [500.0, 500.0], "Tree": ["1", "new"]})
    pop = post.predict(new, re=False)
    grp = post.predict(new, new_levels="sample")
    assert pop["mean"].iloc[0] == pytest.approx(pop["mean"].iloc[1])
    assert grp["sd"].iloc[1] > 3 * grp["sd"].iloc[0]  # an unseen tree carries the tree SD
    with pytest.raises(multilevel.errors.DataError, match="new_levels"):
        post.predict(new, new_levels="error")
    idata = post.inference_data
    assert "r_Tree__Asym" in idata.posterior and "y" in idata.posterior_predictive


def test_coefficients_need_priors(orange):
    with pytest.raises(ModelError, match="b_xmid") as e:
        multilevel.sample(FORMULA, orange, params=PARAMS, priors={"b_Asym": "normal(200, 50)"}, chains=1)
    assert "no default" in str(e.value)


def test_unknown_prior_key_and_family(orange):
    with pytest.raises(ModelError, match="Did you mean"):
        multilevel.sample(FORMULA, orange, params=PARAMS, priors={**PRIORS, "sd_Tre": "normal(0, 1)"})
    with pytest.raises(ModelError, match="Gaussian, binomial or Poisson"):
        multilevel.sample(FORMULA, orange, params=PARAMS, priors=PRIORS, family="Gamma")


def test_self_start_formula_routes_to_the_nonlinear_sampler(orange):
    post = multilevel.sample(
        "circumference ~ SSlogis(age, Asym, xmid, scal)",
        orange,
        params={"Asym": "1 + (1 | Tree)"},
        priors=PRIORS,
        chains=1,
        draws=200,
        warmup=200,
        seed=1,
        progress=False,
    )
    assert post.fit is not None and post.fit.converged
    assert set(post.summary(group_effects=False).index) == set(BRMS_NAMES)


def test_binomial_nonlinear_posterior_equals_the_glmm_sampler():
    """The same binomial model written as a nonlinear formula and as a mixed model: the
    two samplers' posteriors agree within Monte Carlo error (weak priors, so the
    centring of the mixed model's intercept does not matter)."""
    d = multilevel.load_dataset("cbpp").copy()
    d["prop"] = d["incidence"] / d["size"]
    d["p2"] = (d["period"].astype(str) == "2").astype(float)
    settings = dict(chains=4, draws=1500, warmup=1000, seed=4, progress=False)
    nl = multilevel.sample(
        "prop ~ a + b2 * p2",
        d,
        params={"a": "1 + (1 | herd)", "b2": "1"},
        family="binomial",
        weights="size",
        start={"a": -1.5, "b2": 0.0},
        priors={"b": "normal(0, 10)", "sd": "student_t(3, 0, 2.5)"},
        **settings,
    )
    lin = multilevel.sample(
        "cbind(incidence, size - incidence) ~ p2 + (1 | herd)",
        d,
        family="binomial",
        priors={"b": "normal(0, 10)", "Intercept": "normal(0, 10)", "sd": "student_t(3, 0, 2.5)"},
        **settings,
    )
    a, b = nl.summary(group_effects=False), lin.summary(group_effects=False)
    pairs = {"a_Intercept": "Intercept", "b2_Intercept": "p2", "sd_herd__a_Intercept": "sd_herd__Intercept"}
    assert "sigma" not in a.index
    for ours, theirs in pairs.items():
        z = (a.at[ours, "mean"] - b.at[theirs, "mean"]) / np.hypot(
            a.at[ours, "mcse_mean"], b.at[theirs, "mcse_mean"]
        )
        assert abs(z) < 4, (ours, z)
        assert a.at[ours, "sd"] == pytest.approx(b.at[theirs, "sd"], rel=0.1)
    draws = nl.predict_draws(kind="response")
    assert draws.shape[1] == 56 and np.all((draws >= 0) & (draws <= 1))


def test_orange_correlated_across_parameters_matches_brms(orange):
    """brms' (1 | p | Tree) on Asym and xmid: one LKJ-correlated covariance by tree."""
    ref = json.loads((DATA / "brms" / "orange_cor.json").read_text())
    post = multilevel.sample(
        FORMULA,
        orange,
        params={"Asym": "1 + (1 | p | Tree)", "xmid": "1 + (1 | p | Tree)", "scal": "1"},
        start=START,
        priors={**PRIORS, "sd_xmid": "student_t(3, 0, 40)", "cor": "lkj(2)"},
        chains=4,
        draws=4000,
        warmup=1000,
        seed=5,
        progress=False,
        target_accept=0.95,
    )
    summ = post.summary(group_effects=False)
    names = {
        "Asym_Intercept": "b_Asym_Intercept",
        "xmid_Intercept": "b_xmid_Intercept",
        "scal_Intercept": "b_scal_Intercept",
        "sd_Tree__Asym_Intercept": "sd_Tree__Asym_Intercept",
        "sd_Tree__xmid_Intercept": "sd_Tree__xmid_Intercept",
        "cor_Tree__Asym_Intercept__xmid_Intercept": "cor_Tree__Asym_Intercept__xmid_Intercept",
        "sigma": "sigma",
    }
    assert set(summ.index) == set(names)
    rows = {r["variable"]: r for r in ref["summary"]}
    for ours, theirs in names.items():
        r = rows[theirs]
        z = (summ.at[ours, "mean"] - r["mean"]) / np.hypot(summ.at[ours, "mcse_mean"], r["mcse_mean"])
        assert abs(z) < 4, (ours, z)  # as the uncorrelated model's test: 3.59 seen with JAX 0.10
        assert summ.at[ours, "sd"] == pytest.approx(r["sd"], rel=0.05), ours
    d = post.draws()
    assert "r_Tree__xmid[1,Intercept]" in d and "r_Tree__Asym[1,Intercept]" in d
    new = post.predict(pd.DataFrame({"age": [500.0], "Tree": ["new"]}))
    assert np.isfinite(new.to_numpy()).all()


def test_point_estimates_beside_the_laplace_fit(post):
    """The Laplace column is the likelihood fit under the posterior's names: nlmer's
    estimates of Orange (tests/data/nlmm_references.json), inside the 95% intervals."""
    ref = json.loads((DATA / "nlmm_references.json").read_text())["Orange"]["nlmer"]
    pe = post.point_estimates()
    assert list(pe.columns[:3]) == ["Laplace", "mean", "median"] and pe.attrs["method"] == "Laplace"
    for k in ("Asym", "xmid", "scal"):
        assert pe.loc[f"{k}_Intercept", "Laplace"] == pytest.approx(ref["fixef"][k], rel=1e-4)
    assert pe.loc["sd_Tree__Asym_Intercept", "Laplace"] == pytest.approx(ref["sd"]["Asym"], rel=1e-3)
    assert pe.loc["sigma", "Laplace"] == pytest.approx(ref["sigma"], rel=1e-3)
    assert (pe["flag"] == "").all()
