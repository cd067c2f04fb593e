"""The result surface of a nonlinear fit: as LMM/GLMM fits."""

import json
import math
import warnings

import numpy as np
import pytest

import multilevel
from multilevel.errors import DataError, MissingDataWarning
from multilevel.formula.selfstart import SELF_START
from multilevel.model.nonlinear import build_problem
from multilevel.nlmm.start import initial_beta, population_start

FORMULA = "circumference ~ SSlogis(age, Asym, xmid, scal)"


def test_summary_and_str(orange_fit):
    text = orange_fit.summary()
    assert str(orange_fit) == text
    for part in ("Laplace", "Asym: 1 + (1 | Tree)", "Random effects:", "Tree", "Residual", "Fixed effects:"):
        assert part in text
    assert "logLik -131.5719" in repr(orange_fit)
    json.dumps(orange_fit.to_dict())


def test_information_criteria(orange_fit):
    assert orange_fit.n_params == 5
    assert orange_fit.aic == pytest.approx(-2 * orange_fit.loglik + 10)
    assert orange_fit.bic == pytest.approx(-2 * orange_fit.loglik + 5 * math.log(35))
    assert orange_fit.coef_table.shape == (3, 4)
    assert orange_fit.vcov.shape == (3, 3)


def test_ranef_and_group_level_predictions(orange_fit, orange):
    re = orange_fit.ranef["Tree"]
    assert re.shape == (5, 1) and list(re.columns) == ["Asym"]
    assert abs(re.to_numpy().mean()) < 5
    np.testing.assert_allclose(orange_fit.predict(), orange_fit.fitted)
    np.testing.assert_allclose(orange_fit.predict(orange), orange_fit.fitted, rtol=1e-10)
    # the group-level curve of a tree is the population curve with its asymptote moved
    beta = orange_fit.fixef
    tree = orange["Tree"].astype(str).to_numpy()
    asym = beta["Asym"] + re["Asym"].reindex(tree).to_numpy()
    by_hand = asym / (1 + np.exp((beta["xmid"] - orange["age"]) / beta["scal"]))
    np.testing.assert_allclose(orange_fit.fitted, by_hand, rtol=1e-10)


def test_population_predictions_and_new_levels(orange_fit, orange):
    new = orange.head(3).assign(Tree=99)
    pop = orange_fit.predict(new, conditional=False)
    beta = orange_fit.fixef
    expected = beta["Asym"] / (1 + np.exp((beta["xmid"] - new["age"]) / beta["scal"]))
    np.testing.assert_allclose(pop, expected)
    with pytest.raises(DataError, match="new_levels='population'"):
        orange_fit.predict(new)
    np.testing.assert_allclose(orange_fit.predict(new, new_levels="population"), pop)
    with pytest.raises(DataError, match="age"):
        orange_fit.predict(new.drop(columns="age"))


def test_simulate(orange_fit):
    sims = orange_fit.simulate(200, seed=1)
    assert sims.shape == (35, 200)
    resid_sd = np.std(orange_fit.simulate(50, seed=2, use_modes=True) - orange_fit.fitted[:, None])
    assert resid_sd == pytest.approx(orange_fit.sigma, rel=0.1)
    # across new random effects the spread at the oldest age holds the tree variance
    late = sims[orange_fit.problem.covariates["age"] == 1582]
    assert late.std() > 2 * orange_fit.sigma


def test_missing_rows_are_counted(orange):
    d = orange.astype({"circumference": float}).copy()
    d.loc[[0, 5], "circumference"] = np.nan
    d.loc[9, "age"] = np.nan
    with pytest.warns(MissingDataWarning, match="3"):
        fit = multilevel.nlfit(FORMULA, d, {"Asym": "1 + (1 | Tree)"})
    assert fit.n_missing == 3 and fit.nobs == 32
    assert "3 rows with missing values were dropped" in fit.summary()


def test_converged_flag_is_never_true_with_a_non_finite_value(orange_fit):
    assert orange_fit.converged and math.isfinite(orange_fit.loglik)
    assert np.all(np.isfinite(orange_fit.se))
    assert orange_fit.optinfo.n_evals > 4 and orange_fit.optinfo.optimizer == "quasi-Newton"


def test_agq_result_reports_its_method(theoph):
    fit = multilevel.nlfit(
        "conc ~ SSfol(Dose, Time, lKe, lKa, lCl)", theoph, {"lKa": "1 + (1 | Subject)"}, nagq=5
    )
    assert fit.nagq == 5 and "quadrature" in fit.method and fit.converged


@pytest.mark.parametrize(
    ("call", "truth", "x"),
    [
        (
            "SSlogis(x, Asym, xmid, scal)",
            {"Asym": 200.0, "xmid": 700.0, "scal": 300.0},
            np.linspace(100, 1600, 12),
        ),
        ("SSasymp(x, Asym, R0, lrc)", {"Asym": 10.0, "R0": 2.0, "lrc": -1.0}, np.linspace(0, 10, 12)),
        ("SSmicmen(x, Vm, K)", {"Vm": 200.0, "K": 0.05}, np.geomspace(0.01, 1.0, 12)),
        (
            "SSbiexp(x, A1, lrc1, A2, lrc2)",
            {"A1": 3.0, "lrc1": 1.0, "A2": 0.6, "lrc2": -1.3},
            np.linspace(0.25, 8, 12),
        ),
        ("SSfol(Dose, x, lKe, lKa, lCl)", {"lKe": -2.5, "lKa": 0.5, "lCl": -3.2}, np.linspace(0.25, 24, 12)),
    ],
)
def test_self_start_recovers_the_population_parameters(call, truth, x):
    import pandas as pd

    name = call.split("(")[0]
    model = SELF_START[name]
    groups = np.repeat(np.arange(4), x.size)
    xs = np.tile(x, 4)
    env = {"x": xs, "input": xs, "Dose": np.full(xs.size, 4.0), **truth}
    from multilevel.formula.expression import evaluate, parse_expression

    y = evaluate(parse_expression(model.text)[0], env, np) * (
        1 + 0.001 * np.random.default_rng(0).normal(size=xs.size)
    )
    d = pd.DataFrame({"y": y, "x": xs, "Dose": 4.0, "g": groups})
    first = model.params[0]
    pr = build_problem(f"y ~ {call}", d, {first: "1 + (1 | g)"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        beta, _ = population_start(pr, initial_beta(pr, None))
    for k, v in zip(pr.beta_names, beta):
        assert v == pytest.approx(truth[k], rel=0.02, abs=0.02), k


def test_correlated_effects_within_a_term():
    """``(1 + x | g)`` in one parameter's formula: a 2 x 2 template, a correlation
    estimated near the simulated one."""
    import pandas as pd

    rng = np.random.default_rng(3)
    n_g, per = 40, 12
    g = np.repeat(np.arange(n_g), per)
    t = np.tile(np.linspace(0.2, 6, per), n_g)
    x = rng.choice([0.0, 1.0], size=g.size)
    cov = np.array([[1.0, 0.6], [0.6, 1.0]]) * 0.3**2
    b = rng.multivariate_normal([0, 0], cov, n_g)
    asym = 10 + 2 * x + b[g, 0] + b[g, 1] * x
    y = asym * (1 - np.exp(-0.7 * t)) + rng.normal(0, 0.1, g.size)
    d = pd.DataFrame({"y": y, "t": t, "x": x, "g": g})
    fit = multilevel.nlfit(
        "y ~ A * (1 - exp(-k * t))", d, {"A": "1 + x + (1 + x | g)", "k": "1"}, start={"A": 9, "k": 1}
    )
    assert fit.converged and fit.problem.n_theta == 3
    vc = fit.varcorr
    corr = vc[vc.term2.notna()]
    assert list(corr.term1) == ["A"] and list(corr.term2) == ["A:x"]
    assert 0.3 < float(corr.sd_or_corr.iloc[0]) < 0.95  # simulated 0.6, 40 groups
    sds = vc[vc.term2.isna() & (vc.group == "g")].sd_or_corr.to_numpy()
    np.testing.assert_allclose(sds, 0.3, atol=0.1)
    assert fit.fixef["A.x"] == pytest.approx(2.0, abs=0.3)
    assert fit.ranef["g"].shape == (40, 2)


def test_profile_intervals(orange_fit):
    """Orange: every parameter's profile reaches +-1.96 where the interval ends (the deviance
    re-minimized there by a fresh start is base + 1.96^2), and the fixed effects' profile
    intervals are near their Wald intervals."""
    from multilevel.nlmm.profile import NlmmProfiler

    ci = orange_fit.confint()
    assert list(ci.index) == ["sd_Asym|Tree", "sigma", "Asym", "xmid", "scal"]
    prof = NlmmProfiler(orange_fit)
    for i, name in enumerate(ci.index):
        lo, hi = ci.loc[name]
        assert lo < prof.estimate[i] < hi
        for v in (lo, hi):
            dev, _ = prof.minimize(i, v, prof.start(i))
            assert dev - prof.base == pytest.approx(1.959964**2, abs=2e-3), name
    wald = orange_fit.confint(method="wald")
    for name in ("Asym", "xmid", "scal"):
        w = wald.loc[name, "upper"] - wald.loc[name, "lower"]
        p = ci.loc[name, "upper"] - ci.loc[name, "lower"]
        assert 0.9 < p / w < 1.25, name


def test_pictures_that_apply_and_clear_refusals(orange_fit):
    import matplotlib

    matplotlib.use("Agg")
    assert len(orange_fit.plot_residuals().axes) == 2
    assert len(orange_fit.plot_profile(["Asym"]).axes) == 1
    for name in ("plot_caterpillar", "plot_shrinkage", "graph"):
        with pytest.raises(multilevel.errors.ModelError, match="not available for nonlinear fits"):
            getattr(orange_fit, name)()
    with pytest.raises(multilevel.errors.ModelError, match="not available for nonlinear fits"):
        orange_fit.report("unused.html")


def test_the_forward_difference_hessian_agrees_with_central_differences(orange_fit, monkeypatch):
    """The SEs come from forward differences of the exact gradient, checked by the
    asymmetry of the differenced matrix; central differences (error of order h^2)
    give the same SEs to 1e-4."""
    from multilevel.nlmm import fit as nlfit_module
    from multilevel.nlmm.numpy_laplace import NumpyLaplace

    x = np.array(orange_fit.optinfo.end)
    obj = NumpyLaplace(orange_fit.problem)
    obj.laplace_and_gradient(x)
    free = np.ones(x.size, bool)
    forward = nlfit_module._hessian_from_gradient(obj, x, free)[1]
    monkeypatch.setattr(nlfit_module, "ASYMMETRY_TOL", -1.0)  # force the central differences
    central = nlfit_module._hessian_from_gradient(obj, x, free)[1]
    p = orange_fit.problem.p
    se_f = np.sqrt(np.diag(2 * np.linalg.inv(forward))[:p])
    se_c = np.sqrt(np.diag(2 * np.linalg.inv(central))[:p])
    np.testing.assert_allclose(se_f, se_c, rtol=1e-4)
    np.testing.assert_allclose(orange_fit.se.to_numpy(), se_f, rtol=1e-6)


def test_correlated_effects_across_parameters_take_few_evaluations(orange):
    """(1 | p | Tree) on Asym and xmid starts where the Laplace deviance is not convex;
    the quasi-Newton search reaches L-BFGS-B's optimum (-130.8679030657) in a few dozen
    gradients (a regression: 654 while its Hessian stayed indefinite)."""
    fit = multilevel.nlfit(
        "circumference ~ Asym / (1 + exp((xmid - age) / scal))",
        orange,
        {"Asym": "1 + (1 | p | Tree)", "xmid": "1 + (1 | p | Tree)", "scal": "1"},
        start={"Asym": 200, "xmid": 700, "scal": 350},
    )
    assert fit.converged and fit.optinfo.n_evals < 60
    assert fit.loglik >= -130.8679030657 - 1e-8
