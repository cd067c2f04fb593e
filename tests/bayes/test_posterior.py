"""The posterior object on radon (correlated intercepts and slopes) and on a binomial GLMM."""

import warnings

import numpy as np
import pandas as pd
import pytest

import multilevel
from multilevel.errors import ModelError


@pytest.fixture(scope="module")
def radon():
    d = multilevel.load_dataset("radon")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = multilevel.Model("log_radon ~ basement + (basement | county)", d)
        return m.sample(chains=2, draws=300, warmup=300, seed=1, progress=False)


@pytest.fixture(scope="module")
def cbpp():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return multilevel.sample(
            "cbind(incidence, size - incidence) ~ period + (1 | herd)",
            multilevel.load_dataset("cbpp"),
            family="binomial",
            chains=2,
            draws=300,
            warmup=300,
            progress=False,
        )


def test_brms_names_and_summary_columns(radon):
    s = radon.summary(group_effects=False)
    assert list(s.index) == [
        "Intercept",
        "basement",
        "sd_county__Intercept",
        "sd_county__basement",
        "cor_county__Intercept__basement",
        "sigma",
    ]
    assert {"mean", "sd", "q2.5", "q97.5", "ess_bulk", "ess_tail", "r_hat", "mcse_mean"} <= set(s.columns)
    full = radon.summary()
    n_county = radon.spec.groupings[0].n_levels
    assert len(full) == 6 + 2 * n_county
    assert "r_county[1,basement]" in full.index


def test_estimates_agree_with_the_likelihood_fit(radon):
    s = radon.summary(group_effects=False)
    fit = radon.fit
    # weak priors, 919 rows: posterior means within half a standard error of the REML estimates
    for name in ("Intercept", "basement"):
        assert s.at[name, "mean"] == pytest.approx(fit.fixef[name], abs=0.5 * fit.fixef_se[name])
    assert s.at["sigma", "mean"] == pytest.approx(fit.sigma, rel=0.03)
    # group effects drawn from their exact conditional centre on the conditional modes
    full = radon.summary()
    modes = fit.ranef_values()[0]
    levels = radon.spec.groupings[0].levels
    got = np.array([full.at[f"r_county[{lev},Intercept]", "mean"] for lev in levels])
    assert np.corrcoef(got, modes[:, 0])[0, 1] > 0.95


def test_inference_data_has_named_dimensions(radon):
    idata = radon.inference_data
    post = idata.posterior
    assert list(post["b"].coords["coef"].values) == ["Intercept", "basement"]
    assert post["r_county"].dims == ("chain", "draw", "county", "county__term")
    assert list(post["cor_county"].coords["county__pair"].values) == ["Intercept__basement"]
    assert post["b"].shape == (2, 300, 2)
    assert idata.sample_stats["diverging"].shape == (2, 300)
    assert idata.posterior_predictive["y"].shape == (2, 300, radon.model.design.n)
    assert np.allclose(idata.observed_data["y"].values, radon.model.design.y)


def test_draws_frame_and_prior_table(radon):
    f = radon.draws_frame()
    assert f.shape == (600, 2 + 6)
    assert f.chain.tolist()[:2] == [0, 0] and f.chain.iloc[-1] == 1
    pt = radon.prior_table()
    assert pt.at["cor_county", "prior"] == "lkj(1)"
    assert set(pt["source"]) == {"default"}


def test_predictions_with_uncertainty_and_new_levels(radon):
    new = pd.DataFrame({"basement": [0, 1, 1], "county": [1, 1, 999]})
    p = radon.predict(new)
    assert list(p.columns) == ["mean", "sd", "q2.5", "q97.5"]
    # a new county: wider than a known one (its effect is drawn from the population)
    assert p.sd[2] > p.sd[1]
    pop = radon.predict(new, new_levels="population")
    assert pop.sd[2] < p.sd[2]
    y = radon.predict(new, kind="response")
    assert (y.sd > p.sd).all()  # new observations add the residual
    with pytest.raises(ModelError, match="new_levels"):
        radon.predict(new, new_levels="error")
    with pytest.raises(ModelError, match="kind"):
        radon.predict(new, kind="mu")
    draws = radon.predict_draws(new, kind="linear", re=False)
    b = radon.beta.reshape(-1, 2)
    np.testing.assert_allclose(draws[:, 1], b[:, 0] + b[:, 1])
    # known county: fixed part plus that county's effects, draw by draw
    lin = radon.predict_draws(new, kind="linear")
    r = radon.group_effects[0].reshape(-1, *radon.group_effects[0].shape[2:])
    np.testing.assert_allclose(lin[:, 1], b[:, 0] + b[:, 1] + r[:, 0, 0] + r[:, 0, 1])
    # a new county, basement = 1: Var = Var(Intercept + basement) + E[x' Sigma x], x = (1, 1)
    S = radon.roots[0].reshape(-1, 2, 2)
    cov = S @ np.swapaxes(S, 1, 2)
    want = (b[:, 0] + b[:, 1]).var() + np.mean(cov.sum(axis=(1, 2)))
    assert lin[:, 2].var() == pytest.approx(want, rel=0.15)


def test_binomial_glmm_non_centred(cbpp, lme4_refs):
    s = cbpp.summary(group_effects=False)
    fit = cbpp.fit
    assert s.at["period[T.2]", "mean"] == pytest.approx(fit.fixef["period[T.2]"], abs=0.15)
    assert 0.4 < s.at["sd_herd__Intercept", "mean"] < 1.2
    pred = cbpp.predict(kind="mean")
    assert ((pred["mean"] > 0) & (pred["mean"] < 1)).all()
    resp = cbpp.predict_draws(kind="response")
    trials = cbpp.model.design.weights
    assert np.allclose(resp * trials, np.round(resp * trials))  # proportions of whole trials
    pe = cbpp.point_estimates()
    assert pe.attrs["method"] == "Laplace"
    # the Laplace column is the likelihood fit, which matches lme4's glmer (tests/data/lme4_fits.json)
    assert pe.at["sd_herd__Intercept", "Laplace"] == pytest.approx(
        lme4_refs["cbpp_laplace"]["theta"], abs=1e-3
    )
    # MAP of the Laplace-approximated marginal posterior: close to the Laplace ML estimate
    laplace = pe.at["sd_herd__Intercept", "Laplace"]
    assert pe.at["sd_herd__Intercept", "MAP"] == pytest.approx(laplace, abs=0.05)


def test_sampling_problems_are_warned_with_advice(radon):
    from multilevel.present.posterior import Posterior

    stats = dict(radon.sample_stats)
    stats["diverging"] = stats["diverging"].copy()
    stats["diverging"][0, :3] = True
    with pytest.warns(Warning, match="3 divergent transitions.*target_accept"):
        Posterior(
            model=radon.model,
            structure=radon.structure,
            priors=radon.priors,
            program=radon.program,
            data=radon.data,
            values=radon.values,
            beta=radon.beta,
            roots=radon.roots,
            group_effects=radon.group_effects,
            sample_stats=stats,
            fit=radon.fit,
            fit_messages=(),
            settings=radon.settings,
        )


def test_bad_settings_are_errors():
    d = multilevel.load_dataset("eight_schools")
    with pytest.raises(ModelError, match="chains"):
        multilevel.sample("y | se(sigma) ~ 1 + (1 | school)", d, chains=0)
    with pytest.raises(ModelError, match="target_accept"):
        multilevel.sample("y | se(sigma) ~ 1 + (1 | school)", d, target_accept=1.5)
    with pytest.raises(ModelError, match="no parameter or class 'tau'"):
        multilevel.sample("y | se(sigma) ~ 1 + (1 | school)", d, priors={"tau": "cauchy(0, 5)"})
