"""The observed- and expected-information Laplace approximations against glmmTMB and lme4.

glmmTMB's Laplace approximation takes its log-determinant from the observed Hessian
of the joint log density at the conditional modes (multilevel's default,
``laplace="observed"``), lme4's from the expected (Fisher) weights
(``laplace="expected"``). References: ``tests/data/laplace/laplace_refs.json``, made
by ``laplace_refs.R`` next to it (simulated Gamma-log and negative-binomial-log
models, and the public glmmTMB cases), and ``lme4_dispersion_refs.json`` (inverse
Gaussian and Gaussian-log glmer fits). For a family with a scale dispersion lme4's
glmer optimizes its own criterion, which ``laplace="expected"`` reproduces there.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import multilevel
from multilevel.datasets import load_dataset
from multilevel.errors import ConvergenceWarning, ModelError

from ..conftest import lme4_name

HERE = Path(__file__).parent.parent / "data"
REFS = json.loads((HERE / "laplace" / "laplace_refs.json").read_text())
CASES = [k for k in REFS if k != "versions"]
# every case, the Poisson-sqrt one too: its mean eta^2 is even in eta, and a fit whose
# modes land on the branch of negative linear predictors (-707.21) is redone from
# smaller variances (glmm.boundary.inside_the_link)
FITTED = CASES
FAMILY = {"Gamma": "Gamma", "nbinom2": "negative_binomial", "binomial": "binomial", "poisson": "poisson"}


def _data(name: str) -> pd.DataFrame:
    if name == "Salamanders":
        df = pd.read_csv(HERE / "laplace" / "Salamanders.csv")
        df["spp"] = pd.Categorical(df.spp, ["GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"])
        df["mined"] = pd.Categorical(df.mined, ["yes", "no"])
        return df
    if name == "grouseticks":
        df = load_dataset("grouseticks")
        df["HEIGHTs"] = (df.HEIGHT - df.HEIGHT.mean()) / df.HEIGHT.std()  # R's scale()
        return df
    path = HERE / ("gamma_sim.csv" if name == "gamma_sim" else f"laplace/{name}.csv")
    return pd.read_csv(path, dtype={"g": str, "h": str, "f": str})


def _fit(case: str, laplace: str | None = None):
    ref = REFS[case]
    with warnings.catch_warnings():
        # Poisson-sqrt: PIRLS fails at some intermediate theta on the mirror branch (warned)
        warnings.simplefilter("ignore" if case == "sim_poisson_sqrt" else "error", ConvergenceWarning)
        return multilevel.fit(
            ref["formula"],
            _data(ref["data"]),
            family=FAMILY[ref["family"]],
            link=ref["link"],
            laplace=laplace,
        )


def _dispersion(ref: dict) -> float | None:
    return float(next(iter(ref["dispersion"].values()))) if ref["dispersion"] else None


def _sds(m) -> dict[tuple[str, str], float]:
    out = {}
    for g, T in zip(m.spec.groupings, m.spec.templates(m.theta)):
        for name, sd in zip(g.columns, np.sqrt(np.diag(T @ T.T))):
            out[(g.name, lme4_name(name))] = float(sd)
    return out


@pytest.mark.parametrize("case", FITTED)
def test_observed_laplace_reaches_glmmTMB(case):
    ref = REFS[case]["glmmTMB"]
    m = _fit(case)  # the default
    assert m.laplace == "observed" and m.converged
    assert m.loglik == pytest.approx(ref["logLik"], abs=1e-5)
    assert m.dispersion == pytest.approx(_dispersion(ref), rel=1e-4)
    for name, value in m.fixef.items():
        assert value == pytest.approx(ref["fixef"][lme4_name(name)], abs=2e-4)
    for name, value in m.fixef_se.items():
        assert value == pytest.approx(ref["fixef_se"][lme4_name(name)], rel=1e-3)
    for (g, term), sd in _sds(m).items():
        assert sd == pytest.approx(ref["sd"][g][term], abs=1e-4)


@pytest.mark.parametrize("case", [c for c in FITTED if REFS[c]["family"] != "Gamma"])
def test_expected_laplace_reaches_lme4(case):
    ref = REFS[case]["lme4"]
    m = _fit(case, "expected")
    assert m.laplace == "expected" and m.converged
    assert m.loglik == pytest.approx(ref["logLik"], abs=1e-5)
    assert m.dispersion == pytest.approx(_dispersion(ref), rel=1e-4)
    for name, value in m.fixef.items():
        assert value == pytest.approx(ref["fixef"][lme4_name(name)], abs=2e-4)


@pytest.mark.parametrize(("laplace", "peer"), [("observed", "glmmTMB"), ("expected", "lme4")])
def test_poisson_sqrt_at_the_reference_estimates(laplace, peer):
    from multilevel.glmm.fit import deviance_function

    ref = REFS["sim_poisson_sqrt"][peer]
    model = multilevel.Model("y ~ x + (1 | g)", _data("sim_poisson_sqrt"), family="poisson", link="sqrt")
    from multilevel.glmm.pirls import GlmmProblem

    prob = GlmmProblem(model.spec, model.design, model.family, laplace=laplace)
    x = np.array([ref["sd"]["g"]["(Intercept)"], ref["fixef"]["(Intercept)"], ref["fixef"]["x"]])
    f = deviance_function(prob, 1, 1, 2, False, [np.zeros((40, 1))])
    assert -0.5 * f(x) == pytest.approx(ref["logLik"], abs=1e-4)


GAMMA = [k for k in CASES if REFS[k]["family"] == "Gamma"]


@pytest.mark.parametrize("case", GAMMA)
def test_expected_is_lme4s_criterion_for_gamma(case):
    # lme4's Gamma glmer optimizes its own criterion (modes and weights at phi = 1,
    # the aic with phi = deviance / n), not the Laplace likelihood with phi estimated:
    # laplace="expected" is that criterion, its logLik lme4's, sigma^2 lme4's
    ref = REFS[case]["lme4"]
    m = _fit(case, "expected")
    assert m.laplace == "expected" and m.converged and m.problem.lme4_criterion
    assert m.loglik == pytest.approx(ref["logLik"], rel=1e-6)
    phi = _dispersion(ref)
    assert m.dispersion == pytest.approx(phi, rel=1e-4)
    for name, value in m.fixef.items():
        assert value == pytest.approx(ref["fixef"][lme4_name(name)], abs=1e-4)
    # lme4's VarCorr prints theta x sigma; the random effects' SDs are theta
    for (g, term), sd in _sds(m).items():
        assert sd == pytest.approx(ref["sd"][g][term] / np.sqrt(phi), rel=1e-3)
    assert m.n_params == m.theta.size + m.spec.p + 1  # lme4's df counts sigma


DISPERSION_REFS = json.loads((HERE / "laplace" / "lme4_dispersion_refs.json").read_text())


@pytest.mark.parametrize(
    ("case", "family"), [("sim_invgauss_log", "inverse_gaussian"), ("sim_gaussian_log", "gaussian")]
)
def test_expected_is_lme4s_criterion_for_the_other_dispersion_families(case, family):
    # lme4_dispersion_refs.R: glmer's criterion for inverse Gaussian and Gaussian-log
    ref = DISPERSION_REFS[case]
    df = pd.read_csv(HERE / "laplace" / f"{case}.csv", dtype={"g": str})
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        m = multilevel.fit(ref["formula"], df, family=family, link="log", laplace="expected")
    assert m.converged and m.problem.lme4_criterion
    assert m.loglik == pytest.approx(ref["logLik"], rel=1e-6)
    assert m.sigma == pytest.approx(ref["sigma"], rel=1e-4)
    assert m.theta[0] == pytest.approx(ref["theta"]["g.(Intercept)"], rel=1e-3)
    for name, value in m.fixef.items():
        assert value == pytest.approx(ref["fixef"][lme4_name(name)], abs=1e-4)


def test_lme4s_gamma_criterion_at_its_estimates():
    from multilevel.glmm.fit import deviance_function

    ref = REFS["gamma_sim_log"]["lme4"]
    model = multilevel.Model("y ~ x + (1 | g)", _data("gamma_sim"), family="Gamma", link="log")
    from multilevel.glmm.pirls import GlmmProblem

    prob = GlmmProblem(model.spec, model.design, model.family, laplace="expected")
    theta = ref["sd"]["g"]["(Intercept)"] / np.sqrt(_dispersion(ref))
    x = np.array([theta, ref["fixef"]["(Intercept)"], ref["fixef"]["x"]])
    f = deviance_function(prob, 1, 1, 2, False, [np.zeros((prob.spec.groupings[0].n_levels, 1))])
    assert -0.5 * f(x) == pytest.approx(ref["logLik"], abs=1e-5)


def test_lme4s_gamma_criterion_from_its_parts():
    from scipy import stats

    m = _fit("sim_gamma_log", "expected")
    r, y = m.estimate.pirls, m.problem.y
    mu = r.mu
    d = float(np.sum(2 * (-np.log(y / mu) + (y - mu) / mu))) / y.size  # deviance / n
    aic = -2 * float(np.sum(stats.gamma.logpdf(y, 1 / d, scale=mu * d))) + 2
    M = m.problem.pirls(m.theta, m.estimate.beta, 1.0).factor.logdet_z
    assert m.deviance == pytest.approx(M + r.sqr_u + aic, abs=1e-8)
    # the modes are those of phi = 1, whatever dispersion is passed
    r7 = m.problem.pirls(m.theta, m.estimate.beta, 7.0)
    assert r7.laplace_deviance == pytest.approx(m.deviance, abs=1e-8)
    pearson = float(np.sum(((y - mu) / mu) ** 2))
    assert m.dispersion == pytest.approx((pearson + r.sqr_u) / y.size, rel=1e-12)


def test_lme4s_criterion_has_no_analytic_gradient_or_profile():
    from multilevel.glmm.gradient import gradient_available

    m = _fit("sim_gamma_log", "expected")
    assert not gradient_available(m.problem)
    assert "BOBYQA" in m.optinfo.optimizer
    with pytest.raises(ModelError, match="lme4's glmer criterion"):
        m.profile()
    # the observed Laplace (the default) is the likelihood, dispersion a parameter
    o = _fit("sim_gamma_log")
    assert not o.problem.lme4_criterion and o.problem.estimates_dispersion


def test_the_two_optima_differ_for_non_canonical_links():
    # by 0.045 (Salamanders) and 0.053 (gamma_sim) in the log-likelihood
    for case in ("salamanders_nb2", "gamma_sim_log"):
        obs, exp = _fit(case), _fit(case, "expected")
        assert abs(obs.loglik - exp.loglik) > 0.01
        assert obs.loglik == pytest.approx(REFS[case]["glmmTMB"]["logLik"], abs=1e-5)


def test_canonical_links_are_the_same_in_both():
    cbpp = load_dataset("cbpp")
    f = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    obs = multilevel.fit(f, cbpp, family="binomial")
    exp = multilevel.fit(f, cbpp, family="binomial", laplace="expected")
    assert obs.deviance == exp.deviance
    assert obs.approximation == "Laplace"
    assert "fit by maximum likelihood (Laplace approximation)\n" in obs.summary()


def test_the_summary_and_record_say_which():
    m = _fit("sim_gamma_log")
    assert m.approximation == "Laplace (observed information)"
    assert "fit by maximum likelihood (Laplace approximation, observed information)" in m.summary()
    d = m.to_dict()
    assert d["laplace"] == "observed" and d["approximation"] == "Laplace (observed information)"


def test_laplace_is_refused_where_it_does_not_apply():
    sleep = load_dataset("sleepstudy")
    with pytest.raises(ModelError, match=r"linear mixed model.*drop laplace"):
        multilevel.fit("Reaction ~ Days + (1 | Subject)", sleep, laplace="expected")
    df = _data("sim_gamma_log")
    for bad in ("fisher", "Observed", 1):
        with pytest.raises(ModelError, match=r"laplace must be 'observed'.*or 'expected'"):
            multilevel.fit("y ~ x + (1 | g)", df, family="Gamma", link="log", laplace=bad)


def test_anova_refuses_to_mix_the_two():
    df = _data("sim_nb_log")
    m0 = multilevel.fit("y ~ 1 + (1 | g)", df, family="negative_binomial", laplace="expected")
    m1 = multilevel.fit("y ~ x + (1 | g)", df, family="negative_binomial")
    with pytest.raises(ModelError, match="laplace"):
        multilevel.anova(m0, m1)
    m0o = multilevel.fit("y ~ 1 + (1 | g)", df, family="negative_binomial")
    table = multilevel.anova(m0o, m1)
    assert "observed information" in str(table)


def test_a_refit_keeps_the_approximation():
    m = _fit("sim_nb_log", "expected")
    r = m.refit(m.problem.y)
    assert r.laplace == "expected"
    assert r.loglik == pytest.approx(m.loglik, abs=1e-6)


@pytest.mark.parametrize(
    ("case", "family"), [("sim_gamma_log", "Gamma"), ("sim_nb_log", "negative_binomial")]
)
def test_quadrature_is_scaled_by_the_same_curvature(case, family):
    from multilevel.glmm.agq import agq_deviance
    from multilevel.glmm.pirls import GlmmProblem

    m = _fit(case)
    th, beta, disp = m.theta, m.fixef.to_numpy(), m.dispersion
    dev = {}
    for laplace in ("observed", "expected"):
        # nagq > 1: the expected scaling of the likelihood's quadrature (for the Gamma,
        # not lme4's criterion, which is the Laplace fits' only)
        prob = GlmmProblem(m.spec, m.design, m.family, laplace=laplace, nagq=25)
        r = prob.pirls(th, beta, disp)
        # one node is the Laplace approximation of the same kind
        assert agq_deviance(prob, r, th, beta, disp, 1) == pytest.approx(r.laplace_deviance, abs=1e-9)
        dev[laplace] = {q: agq_deviance(prob, r, th, beta, disp, q) for q in (1, 5, 25)}
    exact = dev["observed"][25]
    assert dev["expected"][25] == pytest.approx(exact, abs=1e-8)  # the integral does not depend on it
    for q in (1, 5):  # the observed curvature centres the nodes better
        assert abs(dev["observed"][q] - exact) < abs(dev["expected"][q] - exact)


def test_quadrature_fits_record_the_scaling():
    df = _data("sim_gamma_log")
    m = multilevel.fit("y ~ x + (1 | g)", df, family="Gamma", link="log", nagq=7)
    assert m.approximation == "adaptive Gauss-Hermite quadrature (nagq = 7, observed information)"
    e = multilevel.fit("y ~ x + (1 | g)", df, family="Gamma", link="log", nagq=7, laplace="expected")
    assert e.laplace == "expected"
    assert m.loglik == pytest.approx(e.loglik, abs=2e-3)  # both near the exact likelihood


def test_an_observed_information_not_positive_definite_falls_back(monkeypatch):
    from multilevel.glmm import pirls

    def not_pd(self, state, disp, Ts):
        return pirls.ObservedCurvature(None, None)  # type: ignore[arg-type]

    df = _data("sim_gamma_log")
    model = multilevel.Model("y ~ x + (1 | g)", df, family="Gamma", link="log")
    prob = pirls.GlmmProblem(model.spec, model.design, model.family)
    monkeypatch.setattr(pirls.GlmmProblem, "observed_curvature", not_pd)
    monkeypatch.setattr(pirls, "NEWTON_STEPS", 0)  # their last step gives the curvature too
    r = prob.pirls(np.array([0.5]), np.array([0.4, 0.35]), 0.7)
    assert r.curvature is None and r.laplace_deviance == np.inf  # never a NaN
    with pytest.warns(ConvergenceWarning, match=r"not positive definite.*laplace='expected'"):
        m = multilevel.fit("y ~ x + (1 | g)", df, family="Gamma", link="log")
    assert m.laplace == "expected" and m.converged and np.isfinite(m.loglik)
    assert m.loglik == pytest.approx(_fit("sim_gamma_log", "expected").loglik, abs=1e-8)


def test_the_command_line_flag():
    from ..conftest import run_cli

    csv = str(HERE / "laplace" / "sim_gamma_log.csv")
    args = ["fit", csv, "y ~ x + (1 | g)", "--family", "Gamma", "--link", "log", "--json"]
    r = run_cli(*args, "--laplace", "expected")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["laplace"] == "expected" and d["approximation"] == "Laplace (expected information)"
    assert d["loglik"] == pytest.approx(_fit("sim_gamma_log", "expected").loglik, abs=1e-6)
    bad = run_cli("fit", csv, "y ~ x + (1 | g)", "--laplace", "expected")
    assert bad.returncode != 0
    assert "--laplace expected applies to generalized models" in bad.stderr
    assert "drop --laplace" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.parametrize("laplace", ["observed"])
def test_conditional_sds_follow_the_approximation(laplace):
    # Gamma-log, one scalar term: the conditional precision of group j's effect is
    # sum_i H_i + 1 / sd^2, with H_i = y_i / (mu_i phi) (observed; laplace="expected" is
    # lme4's criterion for Gamma, whose weights hold the dispersion at 1)
    d = _data("sim_gamma_log")
    m = _fit("sim_gamma_log", laplace)
    phi = m.estimate.disp
    b = m.ranef["g"].iloc[:, 0]
    b.index = b.index.astype(str)
    g = d["g"].astype(str)
    mu = np.exp(m.fixef["Intercept"] + m.fixef["x"] * d["x"] + b.reindex(g).to_numpy())
    h = d["y"] / (mu * phi) if laplace == "observed" else pd.Series(1.0 / phi, index=d.index)
    sd_b = float(m.varcorr.iloc[0]["sd_or_corr"])
    closed = 1.0 / np.sqrt(h.groupby(g).sum() + 1.0 / sd_b**2)
    ours = m.ranef_sd["g"].iloc[:, 0]
    ours.index = ours.index.astype(str)
    np.testing.assert_allclose(ours.reindex(closed.index).to_numpy(), closed.to_numpy(), rtol=1e-10)


def test_batched_refits_probe_a_variance_at_zero_as_the_fit_does():
    # a simulated cbpp response whose batched Newton stopped at theta = 0, below the
    # likelihood's optimum at theta = 0.343 (the single fit's scalar boundary probe)
    from multilevel.glmm.refits import refit
    from multilevel.model.replicates import refit_columns

    cb = load_dataset("cbpp")
    cb["herd"] = cb.herd.astype(str)
    f = multilevel.fit("cbind(incidence, size - incidence) ~ 1 + (1 | herd)", cb, family="binomial")
    codes, n = pd.factorize(cb.herd)[0], cb["size"].to_numpy()
    r = np.random.default_rng(10)
    k = r.binomial(n, 1 / (1 + np.exp(-(-2.046 + 0.812 * r.standard_normal(15)[codes]))))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        one = refit(f, k / n)
    many = refit_columns(f, (k / n)[:, None], 1)
    assert one.theta[0] > 0.3
    assert many.theta[0, 0] == pytest.approx(one.theta[0], rel=1e-4)


def test_link_retries_cut_by_the_time_limit_are_not_converged():
    from multilevel import FitControl

    gt = load_dataset("grouseticks")
    for c in ("BROOD", "INDEX", "LOCATION", "YEAR"):
        gt[c] = gt[c].astype(str)
    f = "TICKS ~ YEAR + cHEIGHT + (1|BROOD) + (1|INDEX) + (1|LOCATION)"
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        m = multilevel.fit(f, gt, family="poisson", link="sqrt", control=FitControl(max_seconds=1.0))
    if m.converged:  # a machine fast enough to finish every retry in the second
        unlimited = multilevel.fit(f, gt, family="poisson", link="sqrt")
        assert m.loglik == pytest.approx(unlimited.loglik, abs=1e-6)
    else:
        assert any("time limit" in str(x.message) for x in w)


def test_lme4_criterion_outside_the_mean_space_is_a_failed_fit_not_nan():
    # Gamma with the inverse link on sleepstudy: lme4's criterion walks to negative means
    s = load_dataset("sleepstudy")
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        m = multilevel.fit("Reaction ~ Days + (1 | Subject)", s, family="Gamma", laplace="expected")
    assert not any(issubclass(x.category, RuntimeWarning) for x in w)
    if not m.converged:
        assert any("fit failed" in str(x.message) or "converge" in str(x.message) for x in w)
    else:
        assert np.isfinite(m.loglik)
