"""Refits by the thousand: refit(y), the parametric bootstrap, the bootstrap LRT and fit_many,
against lme4 / pbkrtest (``tests/data/refits_refs.json``, made by ``refits_refs.R``) and
against the single-fit path they must reproduce."""

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import multilevel
from multilevel.errors import ModelError
from multilevel.lmm.batch import BatchCriterion, response_products
from multilevel.model.bootstrap import norm_inter

DATA = Path(__file__).parent / "data"
REFS = json.loads((Path(__file__).parent / "data" / "refits_refs.json").read_text())
SLEEP = "Reaction ~ Days + (Days | Subject)"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def sleep():
    return multilevel.fit(SLEEP, multilevel.load_dataset("sleepstudy"))


@pytest.fixture(scope="module")
def cbpp():
    return multilevel.fit(CBPP, multilevel.load_dataset("cbpp"), family="binomial")


def _quiet_fit(*args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return multilevel.fit(*args, **kw)


def _z_quantiles(reps: np.ndarray, ref_q: float, p: float) -> float:
    """z-score of our p-quantile against a reference from as many draws (Siddiqui's
    density estimate for the quantile's standard error)."""
    reps = reps[np.isfinite(reps)]
    n, h = reps.size, 0.02
    lo, hi = np.quantile(reps, [max(p - h, 0.001), min(p + h, 0.999)])
    dens = (min(p + h, 0.999) - max(p - h, 0.001)) / max(hi - lo, 1e-12)
    se = math.sqrt(p * (1 - p) / n) / dens
    return (float(np.quantile(reps, p)) - ref_q) / (math.sqrt(2) * se)


# ---- the batched criterion -------------------------------------------------
@pytest.mark.parametrize(
    "formula, data",
    [
        (SLEEP, "sleepstudy"),
        ("Reaction ~ Days + (Days || Subject)", "sleepstudy"),
        ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin"),
        ("strength ~ 1 + (1 | batch/cask)", "Pastes"),
        ("Yield ~ 1 + (1 | Batch)", "Dyestuff"),
    ],
)
def test_batch_criterion_equals_the_objective(formula, data):
    m = multilevel.fit(formula, multilevel.load_dataset(data))
    nl = [g.n_levels for g in m.spec.groupings]
    bc = BatchCriterion(m.spec, m.objective.cp, True, response_products(m.design, nl, m.design.y))
    rng = np.random.default_rng(3)
    th = np.abs(m.theta[None] + 0.3 * rng.standard_normal((6, m.theta.size)))
    got = bc(th, np.zeros(6, dtype=int))
    want = np.array([m.objective(t) for t in th])
    np.testing.assert_allclose(got, want, rtol=1e-11)
    est = bc.estimates(m.theta[None], np.zeros(1, dtype=int))
    np.testing.assert_allclose(est["beta"][0], m.fixef.to_numpy(), rtol=1e-10)
    np.testing.assert_allclose(est["vcov"][0], m.vcov.to_numpy(), rtol=1e-8)


def test_batched_refits_match_single_fits(sleep):
    Y = sleep.simulate(25, seed=4).T
    reps = sleep._refit_responses(Y)
    assert reps.batched == 25 and reps.converged.all()
    for r in range(0, 25, 5):
        single = sleep.refit(Y[:, r])
        # Newton reaches the optimum at least as well as BOBYQA
        assert reps.criterion[r] <= single.reml_criterion + 1e-8 * abs(single.reml_criterion)
        assert reps.criterion[r] == pytest.approx(single.reml_criterion, rel=1e-8)
        np.testing.assert_allclose(reps.beta[r], single.fixef.to_numpy(), rtol=1e-5)


# ---- refit ---------------------------------------------------------------
def test_refit_matches_lme4(sleep):
    ref = REFS["sleepstudy_refit"]
    m = sleep.refit(np.asarray(ref["newy"]))
    assert type(m) is type(sleep)
    assert m.reml_criterion == pytest.approx(ref["REMLcrit"], rel=1e-8)
    assert m.fixef.to_numpy() == pytest.approx(list(ref["fixef"].values()), rel=1e-5)
    assert m.theta == pytest.approx(ref["theta"], rel=1e-3, abs=1e-4)
    assert m.sigma == pytest.approx(ref["sigma"], rel=1e-5)
    # the same as fitting the new data from scratch
    d = multilevel.load_dataset("sleepstudy").assign(Reaction=ref["newy"])
    assert m.reml_criterion == pytest.approx(multilevel.fit(SLEEP, d).reml_criterion, rel=1e-9)


def test_glmm_refit_matches_lme4(cbpp):
    ref = REFS["cbpp_refit"]
    inc, size = np.asarray(ref["incidence"], float), np.asarray(ref["size"], float)
    m = cbpp.refit(np.column_stack([inc, size - inc]))
    assert m.loglik == pytest.approx(ref["tight_logLik"], rel=1e-8)
    assert m.fixef.to_numpy() == pytest.approx(list(ref["tight_fixef"].values()), rel=1e-4)
    assert m.theta[0] == pytest.approx(ref["tight_theta"], rel=1e-4)
    # proportions on the fit's scale give the same fit
    assert cbpp.refit(inc / size).loglik == pytest.approx(m.loglik, rel=1e-10)


@pytest.mark.parametrize(
    "y, needle",
    [
        (np.zeros(5), "5 values; the fit used 180 rows"),
        (np.full(180, np.nan), "180 missing or non-finite"),
        (np.zeros((180, 2)), "one vector"),
        ("abc", "must be numbers"),
    ],
)
def test_refit_bad_responses(sleep, y, needle):
    with pytest.raises(ModelError, match=needle):
        sleep.refit(y)


def test_glmm_refit_with_other_trials_is_an_error(cbpp):
    n = cbpp.design.n
    with pytest.raises(ModelError, match="differ from the fit's trials"):
        cbpp.refit(np.column_stack([np.ones(n), np.ones(n)]))


# ---- the bootstrap -------------------------------------------------------
def test_bootstrap_percentiles_match_bootmer(sleep):
    ref = REFS["sleepstudy_boot_fixed"]  # lme4's bootMer with its REML refit corrected
    b = multilevel.bootstrap(sleep, 2000, seed=11)
    assert b.n == 2000 and b.n_failed == 0 and b.batched == 2000
    assert list(b.replicates.columns) == [
        "Intercept",
        "Days",
        "sd_(Intercept)|Subject",
        "sd_Days|Subject",
        "cor_Days.(Intercept)|Subject",
        "sigma",
    ]
    np.testing.assert_allclose(b.t0.to_numpy(), ref["t0"], rtol=1e-4)
    for j, col in enumerate(b.replicates.columns):
        reps = b.replicates[col].to_numpy()
        for key, p in (("q025", 0.025), ("q50", 0.5), ("q975", 0.975)):
            assert abs(_z_quantiles(reps, ref[key][j], p)) < 4, (col, key)
        assert np.nanstd(reps, ddof=1) == pytest.approx(ref["sd"][j], rel=0.1)


def test_glmm_bootstrap_percentiles_match_bootmer(cbpp):
    ref = REFS["cbpp_boot"]
    b = multilevel.bootstrap(cbpp, 1000, seed=12)
    assert b.n_failed == 0 and b.batched == 1000
    for j, col in enumerate(b.replicates.columns):
        reps = b.replicates[col].to_numpy()
        for key, p in (("q025", 0.025), ("q50", 0.5), ("q975", 0.975)):
            assert abs(_z_quantiles(reps, ref[key][j], p)) < 4, (col, key)


def test_bootstrap_intervals_and_summary(sleep):
    b = multilevel.bootstrap(sleep, 300, seed=1)
    perc, basic, norm = (b.confint(method=m) for m in ("perc", "basic", "norm"))
    t0 = b.t0
    np.testing.assert_allclose(basic["lower"], 2 * t0 - perc["upper"])
    np.testing.assert_allclose(basic["upper"], 2 * t0 - perc["lower"])
    assert (norm["lower"] < t0).all() and (norm["upper"] > t0).all()
    assert set(b.summary().columns) >= {"original", "bias", "std. error"}
    assert "300 parametric replicates" in repr(b)
    with pytest.raises(ModelError, match="perc, basic, norm"):
        b.confint(method="bca")
    # the same seed gives the same replicates
    pd.testing.assert_frame_equal(multilevel.bootstrap(sleep, 300, seed=1).replicates, b.replicates)


def test_norm_inter_is_boots_percentile():
    t = np.arange(1.0, 100.0)  # 99 replicates: (R + 1) * 0.025 = 2.5 lies between t[2] and t[3]
    from scipy.stats import norm

    z = norm.ppf([0.025, 0.02, 0.03])
    assert norm_inter(t, 0.025) == pytest.approx(2 + (z[0] - z[1]) / (z[2] - z[1]))
    assert norm_inter(t, 0.5) == 50.0
    assert norm_inter(t, 0.001) == 1.0
    assert math.isnan(norm_inter(np.array([np.nan]), 0.5))


def test_custom_statistic_and_use_u(sleep):
    b = multilevel.bootstrap(sleep, 8, lambda m: [m.sigma, m.fixef["Days"]], seed=2)
    assert list(b.replicates.columns) == ["t1", "t2"] and b.n_failed == 0
    fast = multilevel.bootstrap(sleep, 8, seed=2)
    np.testing.assert_allclose(b.replicates["t1"], fast.replicates["sigma"], rtol=1e-4)
    held = multilevel.bootstrap(sleep, 200, seed=2, use_u=True)
    drawn = multilevel.bootstrap(sleep, 200, seed=2)
    # held group effects: the replicates vary less than with new effects drawn (equal if
    # use_u were ignored), and the simulated responses centre on the fitted values
    assert held.replicates["Intercept"].std() < drawn.replicates["Intercept"].std()
    sims = sleep.simulate(2000, seed=3, use_modes=True)
    # each row's mean has SE sigma / sqrt(2000); the largest of 180 such deviations stays below 5 SE
    assert np.abs(sims.mean(axis=0) - sleep.fitted).max() < 5 * sleep.sigma / np.sqrt(2000)
    with pytest.raises(ModelError, match="same number every time"):
        counter = iter(range(100))
        multilevel.bootstrap(sleep, 3, lambda m: np.ones(1 + next(counter) % 2), seed=1)


@pytest.mark.parametrize("n", [0, -1, 2.5, True, "10"])
def test_bootstrap_bad_n(sleep, n):
    with pytest.raises(ModelError, match="positive integer"):
        multilevel.bootstrap(sleep, n)


def test_bootstrap_needs_a_mixed_fit():
    g = multilevel.gee("Reaction ~ Days", multilevel.load_dataset("sleepstudy"), groups="Subject")
    with pytest.raises(ModelError, match="mixed-model fit"):
        multilevel.bootstrap(g, 10)


def test_confint_boot(sleep):
    ci = sleep.confint(method="boot", nsim=200, seed=3)
    assert list(ci.index) == list(sleep.confint(method="wald").index)
    assert ci.attrs["method"] == "boot"
    assert (ci["lower"] < ci["upper"]).all()
    days = sleep.confint("Days", method="boot", nsim=200, seed=3, boot_type="norm")
    assert list(days.index) == ["Days"]


# ---- the bootstrap likelihood-ratio test -----------------------------------
def test_pb_test_matches_pbkrtest():
    d = multilevel.load_dataset("sleepstudy")
    m1 = multilevel.fit(SLEEP, d)
    m2 = multilevel.fit("Reaction ~ Days + I(Days**2) + (Days | Subject)", d)
    ref = REFS["sleepstudy_pb_quadratic"]
    a = multilevel.anova(m1, m2, test="PB", n=2000, seed=5)
    assert a.table["Chisq"].iloc[1] == pytest.approx(ref["LRT_stat"], rel=1e-6)
    p = float(a.table["Pr(PB)"].iloc[1])
    se = math.sqrt(2 * ref["p_PB"] * (1 - ref["p_PB"]) / 2000)
    assert abs(p - ref["p_PB"]) < 4 * se
    assert "parametric bootstrap, 2000 simulations" in str(a)
    m0 = multilevel.fit("Reaction ~ 1 + (Days | Subject)", d)
    days = multilevel.anova(m0, m1, test="PB", n=500, seed=1)
    # no simulated statistic reaches the observed 23.5: p is its floor, as pbkrtest's
    assert float(days.table["Pr(PB)"].iloc[1]) == pytest.approx(1 / 501)
    with pytest.raises(ModelError, match="test must be one of"):
        multilevel.anova(m0, m1, test="KR")


def test_pb_test_glmm(cbpp):
    d = multilevel.load_dataset("cbpp")
    m0 = multilevel.fit("cbind(incidence, size - incidence) ~ 1 + (1 | herd)", d, family="binomial")
    a = multilevel.anova(m0, cbpp, test="PB", n=200, seed=2)
    assert float(a.table["Pr(PB)"].iloc[1]) == pytest.approx(1 / 201)


# ---- many responses --------------------------------------------------------
def _many_data(n_resp, seed=0):
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(20), 3)
    x = rng.standard_normal(60)
    d = pd.DataFrame({"x": x, "g": pd.Categorical(g)})
    Y = 1 + 0.5 * x[:, None] + rng.standard_normal((20, n_resp))[g] * rng.uniform(0.1, 2, n_resp)
    return d, Y + rng.standard_normal((60, n_resp))


def test_fit_many_equals_each_fit():
    d, Y = _many_data(40)
    t = multilevel.fit_many("y ~ x + (1 | g)", d, pd.DataFrame(Y, columns=[f"r{i}" for i in range(40)]))
    assert list(t.columns[:4]) == ["response", "effect", "group", "term"]
    assert len(t) == 40 * 4
    for i in range(0, 40, 4):
        m = _quiet_fit("y ~ x + (1 | g)", d.assign(y=Y[:, i]))
        rows = t[t.response == f"r{i}"]
        assert rows.criterion.iloc[0] <= m.reml_criterion + 1e-8 * abs(m.reml_criterion)
        assert rows.criterion.iloc[0] == pytest.approx(m.reml_criterion, rel=1e-8)
        fixed = rows[rows.effect == "fixed"]
        np.testing.assert_allclose(fixed.estimate, m.fixef, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(fixed.std_error, m.fixef_se, rtol=1e-4)
        np.testing.assert_allclose(fixed.df, m.df, rtol=1e-4)
        np.testing.assert_allclose(fixed.p_value, m.coef_table["Pr(>|t|)"], rtol=1e-3, atol=1e-12)
        assert bool(rows.singular.iloc[0]) == bool(m.singular)


def test_fit_many_response_with_missing_values_is_fitted_alone():
    d, Y = _many_data(3)
    Y[[0, 5], 1] = np.nan
    t = multilevel.fit_many("y ~ x + (1 | g)", d, Y)
    assert t.response.unique().tolist() == ["y1", "y2", "y3"]
    m = _quiet_fit("y ~ x + (1 | g)", d.assign(y=Y[:, 1]))
    assert t[t.response == "y2"].criterion.iloc[0] == pytest.approx(m.reml_criterion, rel=1e-9)


@pytest.mark.parametrize(
    "responses, needle",
    [
        (np.zeros((3, 60)), "transpose it"),
        (np.zeros((59, 2)), "59 rows and the data 60"),
        (np.zeros((60, 0)), "no columns"),
        (pd.DataFrame({"a": ["x"] * 60}), "numeric columns"),
        (np.zeros((60, 2, 2)), "2-D"),
    ],
)
def test_fit_many_bad_responses(responses, needle):
    d, _ = _many_data(1)
    with pytest.raises(ModelError, match=needle):
        multilevel.fit_many("y ~ x + (1 | g)", d, responses)


def test_fit_many_checks_reml():
    d, Y = _many_data(2)
    with pytest.raises(ModelError):
        multilevel.fit_many("y ~ x + (1 | g)", d, Y, reml="yes")


# ---- users of the engine --------------------------------------------------
def test_simulate_power_batch_equals_trial_by_trial(monkeypatch):
    from multilevel import crt
    from multilevel.crt import simulate as sim

    sc = crt.continuous(0.5, 1.0, 0.05)
    batched = crt.simulate_power(sc, 4, 8, method="lmm", reps=60, seed=3)
    monkeypatch.setattr(sim, "_same_design", lambda trials: False)
    single = crt.simulate_power(sc, 4, 8, method="lmm", reps=60, seed=3)
    assert batched.rate == single.rate and batched.failures == single.failures


def test_workers_do_not_change_the_answers(sleep, cbpp):
    for m, n in ((sleep, 400), (cbpp, 200)):
        one = multilevel.bootstrap(m, n, seed=8, workers=1)
        two = multilevel.bootstrap(m, n, seed=8, workers=2)
        pd.testing.assert_frame_equal(one.replicates, two.replicates)
    with pytest.raises(ModelError, match="workers must be"):
        multilevel.bootstrap(sleep, 10, workers=0)


def _radon_like():
    rng = np.random.default_rng(5)
    g = np.repeat(np.arange(12), 6)
    x = rng.standard_normal(g.size)
    return pd.DataFrame(
        {
            "y": 1 + x + rng.standard_normal(12)[g] + rng.standard_normal(g.size),
            "x": x,
            "g": g,
            "h": np.tile(np.arange(6), 12),
            "w": rng.uniform(0.5, 2, g.size),
            "off": rng.uniform(-1, 1, g.size),
            "s": rng.uniform(0.5, 1.5, g.size),
        }
    )


@pytest.mark.parametrize(
    "formula, options",
    [
        ("y ~ x + (1 | g)", {"weights": "w"}),
        ("y ~ x + (1 | g)", {"offset": "off"}),
        ("y | se(s) ~ x + (1 | g)", {}),
        ("y ~ x + (1 | g) + (1 | h)", {}),
        ("y ~ x + (x | g)", {"reml": False}),
    ],
)
def test_batched_refits_handle_weights_offsets_known_se_and_crossed(formula, options):
    m = _quiet_fit(formula, _radon_like(), **options)
    Y = m.simulate(6, seed=2).T
    reps = m._refit_responses(Y)
    assert reps.batched == 6
    for r in range(6):
        single = m.refit(Y[:, r])
        assert reps.criterion[r] == pytest.approx(single.criterion, rel=1e-8, abs=1e-8)
        assert reps.criterion[r] <= single.criterion + 1e-8 * max(1.0, abs(single.criterion))
    b = multilevel.bootstrap(m, 50, seed=1)
    # a correlation with a zero SD is undefined (NaN, as lme4's VarCorr); the rest is finite
    values = b.replicates[[c for c in b.replicates.columns if not c.startswith("cor_")]]
    assert b.n_failed == 0 and np.isfinite(values.to_numpy()).all()


def test_glmm_bootstrap_outside_the_batch_refits_one_by_one(cbpp):
    # quadrature and a family with a dispersion are refitted by the full fit
    agq = _quiet_fit(CBPP, multilevel.load_dataset("cbpp"), family="binomial", nagq=5)
    gam = _quiet_fit("y ~ x + (1 | g)", pd.read_csv(DATA / "gamma_sim.csv"), family="Gamma", link="log")
    for m in (agq, gam):
        b = multilevel.bootstrap(m, 6, seed=1)
        assert b.batched == 0 and b.n_failed == 0
        first = m.refit(m.simulate(6, seed=1)[0])
        assert b.replicates.iloc[0, 0] == pytest.approx(first.fixef.iloc[0], rel=1e-6)
