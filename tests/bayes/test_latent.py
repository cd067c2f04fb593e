"""me() and mi() in sample(): brms 2.18's posteriors (tests/data/brms) and the failure paths."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import multilevel
from multilevel.errors import DataError, FormulaError, ModelError

DATA = Path(__file__).parent.parent / "data" / "brms"
SETTINGS = dict(chains=4, draws=3000, warmup=1000, seed=2, progress=False)
ME_PRIORS = {
    "Intercept": "normal(0, 10)",
    "b": "normal(0, 10)",
    "sd": "student_t(3, 0, 2.5)",
    "sigma": "student_t(3, 0, 2.5)",
    "meanme": "normal(0, 10)",
    "sdme": "student_t(3, 0, 2.5)",
}
MI_PRIORS = {
    "b": "normal(0, 10)",
    "Intercept": "normal(0, 10)",
    "Intercept_x": "normal(0, 10)",
    "sigma": "student_t(3, 0, 2.5)",
    "sigma_x": "student_t(3, 0, 2.5)",
    "sd": "student_t(3, 0, 2.5)",
}
ME_NAMES = {
    "Intercept": "b_Intercept",
    "me(x, sdx)": "bsp_mexsdx",
    "sd_g__Intercept": "sd_g__Intercept",
    "sigma": "sigma",
    "meanme_x": "meanme_mex",
    "sdme_x": "sdme_mex",
}
MI_NAMES = {
    "Intercept": "b_y_Intercept",
    "mi(x)": "bsp_y_mix",
    "z": "b_y_z",
    "sd_g__Intercept": "sd_g__y_Intercept",
    "sigma": "sigma_y",
    "x_Intercept": "b_x_Intercept",
    "x_z": "b_x_z",
    "sigma_x": "sigma_x",
}


@pytest.fixture(scope="module")
def brms() -> dict:
    return json.loads((DATA / "brms_refs.json").read_text())


def check_against(summ: pd.DataFrame, ref: dict, names: dict) -> None:
    """Means within 3.5 Monte Carlo SEs of the difference; SDs within 3.5 of theirs."""
    rows = {r["variable"]: r for r in ref["summary"]}
    for ours, theirs in names.items():
        r = rows[theirs]
        z = (summ.at[ours, "mean"] - r["mean"]) / np.hypot(summ.at[ours, "mcse_mean"], r["mcse_mean"])
        assert abs(z) < 3.5, (ours, "mean", z)
        se_sd = np.hypot(r["mcse_sd"], r["sd"] / np.sqrt(2 * summ.at[ours, "ess_bulk"]))
        z = (summ.at[ours, "sd"] - r["sd"]) / se_sd
        assert abs(z) < 3.5, (ours, "sd", z)


def test_me_matches_brms(brms):
    d = pd.read_csv(DATA / "me_data.csv")
    post = multilevel.sample("y ~ me(x, sdx) + (1 | g)", d, priors=ME_PRIORS, target_accept=0.95, **SETTINGS)
    assert post.divergences == 0
    summ = post.summary(group_effects=False)
    assert list(summ.index) == list(ME_NAMES)
    check_against(summ, brms["me"], ME_NAMES)
    # the attenuation it removes: the naive slope (lme4's ML fit) is 0.71, the truth 1.0
    naive = next(f["estimate"] for f in brms["me"]["naive_lmer"]["fixef"] if f["term"] == "x")
    fit = multilevel.fit("y ~ x + (1 | g)", d, reml=False)
    assert float(fit.fixef["x"]) == pytest.approx(naive, rel=1e-6)
    assert summ.at["me(x, sdx)", "mean"] > naive + 3 * summ.at["me(x, sdx)", "sd"]
    text = str(post)
    assert "Formula: y ~ me(x, sdx) + (1 | g)" in text and "Latent values of me(x, sdx)" in text
    assert post.prior_table().loc["sdme_x", "prior"].endswith("[truncated at 0]")


def test_mi_matches_brms(brms):
    d = pd.read_csv(DATA / "mi_data.csv")
    post = multilevel.sample("y ~ mi(x) + z + (1 | g)", d, mi={"x": "~ z"}, priors=MI_PRIORS, **SETTINGS)
    assert post.divergences == 0
    summ = post.summary(group_effects=True)
    check_against(summ, brms["mi"], MI_NAMES)
    imputed = brms["mi"]["imputed"]
    assert len(imputed) == int(d["x"].isna().sum()) == 50
    for r in imputed:  # brms numbers rows from 1
        ours = summ.loc[f"Ymi_x[{r['row'] - 1}]"]
        assert abs(ours["mean"] - r["mean"]) < 4 * r["sd"] / np.sqrt(ours["ess_bulk"]) + 0.02
        assert ours["sd"] == pytest.approx(r["sd"], rel=0.06)
    assert "Sub-model of mi(x): x ~ z" in str(post)


def test_me_in_an_interaction_matches_brms():
    """y ~ me(x, sdx) * z: the latent values enter their product with z too (brms's
    bsp_mexsdx:z); the data and brms's posterior from tests/data/brms/brms_interactions.R."""
    ref = json.loads((DATA / "brms_interactions.json").read_text())["me_int"]
    d = pd.read_csv(DATA / "me_int_data.csv")
    formula = "y ~ me(x, sdx) * z + (1 | g)"
    post = multilevel.sample(formula, d, priors=ME_PRIORS, target_accept=0.95, **SETTINGS)
    assert post.divergences == 0
    summ = post.summary(group_effects=False)
    names = {**ME_NAMES, "z": "b_z", "me(x, sdx):z": "bsp_mexsdx:z"}
    assert set(summ.index) == set(names)
    check_against(summ, ref, names)


def test_mi_in_an_interaction_matches_brms():
    ref = json.loads((DATA / "brms_interactions.json").read_text())["mi_int"]
    d = pd.read_csv(DATA / "mi_data.csv")
    post = multilevel.sample("y ~ mi(x) * z + (1 | g)", d, mi={"x": "~ z"}, priors=MI_PRIORS, **SETTINGS)
    assert post.divergences == 0
    summ = post.summary(group_effects=True)
    check_against(summ, ref, {**MI_NAMES, "mi(x):z": "bsp_y_mix:z"})


def test_mi_with_a_random_intercept_in_its_sub_model_matches_brms():
    """bf(x | mi() ~ z + (1 | g)): the imputation model has its own effects by group
    (sd_g__x_Intercept, r_g__x[...]); brms's posterior from tests/data/brms/brms_interactions.R."""
    ref = json.loads((DATA / "brms_mi_groups.json").read_text())
    d = pd.read_csv(DATA / "mi_groups_data.csv")
    priors = {**MI_PRIORS, "sd_x": "student_t(3, 0, 2.5)"}
    post = multilevel.sample(
        "y ~ mi(x) + z + (1 | g)", d, mi={"x": "~ z + (1 | g)"}, priors=priors, **SETTINGS
    )
    assert post.divergences == 0
    summ = post.summary(group_effects=True)
    names = {**MI_NAMES, "sd_g__x_Intercept": "sd_g__x_Intercept"}
    names.update({f"r_g__x[{k},Intercept]": f"r_g__x[{k},Intercept]" for k in (1, 7, 20)})
    check_against(summ, ref, names)
    rows = {r["variable"]: r for r in ref["summary"]}
    for row in ref["missing_rows"][:10]:  # brms numbers rows from 1
        ours, theirs = summ.loc[f"Ymi_x[{row - 1}]"], rows[f"Ymi_x[{row}]"]
        assert abs(ours["mean"] - theirs["mean"]) < 4 * theirs["sd"] / np.sqrt(ours["ess_bulk"]) + 0.02
        assert ours["sd"] == pytest.approx(theirs["sd"], rel=0.06)
    assert "Sub-model of mi(x): x ~ z + (1 | g)" in str(post)


@pytest.fixture(scope="module")
def small() -> pd.DataFrame:
    rng = np.random.default_rng(4)
    n = 60
    d = pd.DataFrame(
        {
            "y": rng.normal(size=n),
            "x": rng.normal(size=n),
            "sdx": np.full(n, 0.3),
            "z": rng.normal(size=n),
            "g": np.repeat(np.arange(6), 10),
        }
    )
    return d


@pytest.mark.parametrize(
    "formula, match",
    [
        ("y ~ me(x, sdx)^2 + (1 | g)", "raised to a power"),
        ("y ~ z + (me(x, sdx) | g)", "random-effects term or a function"),
        ("y ~ log(me(x, sdx)) + (1 | g)", "random-effects term or a function"),
        ("y ~ me(x) + (1 | g)", "me\\(x, sdx\\)"),
        ("y ~ mi(x, sdx) + (1 | g)", "not supported"),
        ("y ~ me(x, sdx) + mi(x) + (1 | g)", "two latent terms"),
        ("y ~ me(x, 2) + (1 | g)", "column names"),
    ],
)
def test_formula_errors(small, formula, match):
    with pytest.raises(FormulaError, match=match):
        multilevel.sample(formula, small, chains=1)


def test_data_and_model_errors(small):
    with pytest.raises(ModelError, match="not inside a function"):
        multilevel.sample("y ~ me(x, sdx) + I(x**2) + (1 | g)", small, chains=1)
    with pytest.raises(ModelError, match="as a main effect"):
        multilevel.sample("y ~ me(x, sdx):z + (1 | g)", small, chains=1)
    with pytest.raises(ModelError, match="integrates latent main effects only"):
        multilevel.fit("y ~ me(x, sdx) * z + (1 | g)", small)
    with pytest.raises(ModelError, match="random slope"):
        multilevel.sample("y ~ me(x, sdx) + (x | g)", small, chains=1)
    with pytest.raises(ModelError, match="no mi\\(\\) term"):
        multilevel.sample("y ~ mi(x) + (1 | g)", small, mi={"z": "~ 1"}, chains=1)
    with pytest.raises(ModelError, match="takes random intercepts"):
        multilevel.sample("y ~ mi(x) + (1 | g)", small, mi={"x": "~ z + (z | g)"}, chains=1)
    with pytest.raises(DataError, match="no column 'sdw'"):
        multilevel.sample("y ~ me(x, sdw) + (1 | g)", small, chains=1)
    bad = small.assign(sdx=np.r_[-1.0, small["sdx"].to_numpy()[1:]])
    with pytest.raises(DataError, match="positive and finite; row 0"):
        multilevel.sample("y ~ me(x, sdx) + (1 | g)", bad, chains=1)
    with pytest.raises(DataError, match="every value"):
        multilevel.sample("y ~ mi(x) + (1 | g)", small.assign(x=np.nan), chains=1)


def test_interactions_with_any_response(small):
    """The interaction columns' parts come from the right-hand side alone: cbind()
    responses, proportions with trials, offsets."""
    rng = np.random.default_rng(4)
    d = small.assign(k=rng.integers(0, 11, len(small)), w=10.0)
    d = d.assign(f=10 - d["k"], p=d["k"] / 10)
    for formula, kw in [
        ("cbind(k, f) ~ me(x, sdx) * z + (1 | g)", {"family": "binomial"}),
        ("p ~ me(x, sdx) * z + (1 | g)", {"family": "binomial", "weights": "w"}),
        ("k ~ me(x, sdx) * z + offset(np.log(w)) + (1 | g)", {"family": "poisson"}),
    ]:
        m = multilevel.Model(formula, d, **kw)
        (li,) = m.latent_info
        assert [m.spec.fixed_names[j] for j in li.in_x] == ["x", "x:z"]
        X0, D = m.latent_data[0]["X0"], m.latent_data[0]["D"]
        np.testing.assert_allclose(X0, 0.0, atol=1e-12)
        np.testing.assert_allclose(D, np.c_[np.ones(len(d)), d["z"]], rtol=1e-12)


def test_rows_missing_the_sds_are_counted(small):
    d = small.assign(w=np.random.default_rng(5).normal(size=len(small)))
    d.loc[[3, 7], "w"] = np.nan  # the sub-model's predictor: these rows are dropped, and counted
    d.loc[[5, 9, 11], "x"] = np.nan  # under mi(x) these rows stay, imputed
    with pytest.warns(UserWarning, match="dropped 2 of 60 rows with missing values in columns w"):
        post = multilevel.sample(
            "y ~ mi(x) + z + (1 | g)", d, mi={"x": "x ~ w"}, chains=1, draws=100, warmup=100, progress=False
        )
    assert post.model.design.n == 58
    assert [k for k in post.draws() if k.startswith("Ymi_x")] == ["Ymi_x[5]", "Ymi_x[9]", "Ymi_x[11]"]


def test_latent_posterior_report_and_pictures(small, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    d = small.copy()
    d.loc[[2, 5], "x"] = np.nan
    post = multilevel.sample("y ~ mi(x) + (1 | g)", d, chains=2, draws=100, warmup=100, progress=False)
    out = post.report(tmp_path / "r.html")
    text = out.read_text()
    assert "mi(x)" in text and "Expectations and modes" not in text
    assert post.plot_trace() is not None
    with pytest.raises(ModelError, match="not the same model"):
        post.point_estimates()
