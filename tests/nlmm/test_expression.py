"""The nonlinear formula is parsed, never evaluated; every name is checked."""

import numpy as np
import pandas as pd
import pytest

import multilevel
from multilevel.errors import FormulaError, ModelError
from multilevel.formula.expression import evaluate, parse_mean
from multilevel.formula.selfstart import SELF_START
from multilevel.model.nonlinear import build_problem

DATA = pd.DataFrame({"y": [1.0, 2, 3, 4, 5, 6], "x": [1.0, 2, 3, 4, 5, 6], "g": list("aabbcc")})


@pytest.mark.parametrize(
    "formula",
    [
        "y ~ __import__('os').system('echo hi')",
        "y ~ a.b * x",
        "y ~ (lambda z: z)(x)",
        "y ~ x[0] * a",
        "y ~ a if x else b",
        "y ~ open('f')",
        "y ~ exp(x, 2)",
        "y ~ 'text' * a",
        "y ~ a * x ~ b",
        "y ~ a * (x",
    ],
)
def test_unsafe_or_malformed_syntax_is_refused(formula):
    with pytest.raises(FormulaError):
        parse_mean(formula)


def test_the_error_points_at_the_offending_part():
    with pytest.raises(FormulaError) as e:
        parse_mean("y ~ a * x.real")
    start, end = e.value.span
    assert "x.real" in e.value.formula[start:end]


def test_evaluate_follows_python_arithmetic_and_r_powers():
    m = parse_mean("y ~ -a^2 + b / (1 + exp(-x)) - sqrt(c) * log(d)")
    env = {"a": 3.0, "b": 2.0, "x": 0.5, "c": 4.0, "d": np.e}
    expected = -(3.0**2) + 2.0 / (1 + np.exp(-0.5)) - 2.0 * 1.0
    assert evaluate(m.tree, env, np) == pytest.approx(expected)
    assert m.names == ("a", "b", "x", "c", "d")


@pytest.mark.parametrize("name", sorted(SELF_START))
def test_self_start_models_expand_to_their_expressions(name):
    model = SELF_START[name]
    m = parse_mean(f"y ~ {name}({', '.join(model.args)})")
    rng = np.random.default_rng(0)
    env = {a: rng.uniform(0.5, 2.0) for a in model.args}
    direct = parse_mean(f"y ~ {model.text}")
    assert evaluate(m.tree, env, np) == pytest.approx(evaluate(direct.tree, env, np))
    assert m.selfstart.model == name


def test_unknown_name_is_named_with_the_fix():
    with pytest.raises(FormulaError, match=r"'k'.*neither a column.*params=\{'k': '1'\}"):
        build_problem("y ~ a * exp(k * x)", DATA, {"a": "1 + (1 | g)"})


def test_formula_for_a_name_not_in_the_expression():
    with pytest.raises(FormulaError, match=r"'c'.*does not use"):
        build_problem("y ~ a * x", DATA, {"a": "1 + (1 | g)", "c": "1"})


def test_parameter_that_is_also_a_column():
    with pytest.raises(FormulaError, match="both a parameter"):
        build_problem("y ~ x * a", DATA, {"a": "1 + (1 | g)", "x": "1"})


def test_no_random_effects_is_not_a_mixed_model():
    with pytest.raises(FormulaError, match="not a mixed model"):
        build_problem("y ~ a * x", DATA, {"a": "1"})


def test_start_is_required_without_a_self_starting_model():
    with pytest.raises(ModelError, match="no start for 'a'"):
        multilevel.nlfit("y ~ a * x", DATA, {"a": "1 + (1 | g)"})


def test_start_for_an_unknown_parameter():
    with pytest.raises(ModelError, match="not parameters"):
        multilevel.nlfit("y ~ a * x", DATA, {"a": "1 + (1 | g)"}, start={"a": 1, "zz": 2})


def test_covariate_in_a_parameter_formula_gives_several_coefficients(orange):
    d = orange.assign(Treatment=np.where(orange["Tree"].isin([1, 3]), "A", "B"))
    pr = build_problem(
        "circumference ~ SSlogis(age, Asym, xmid, scal)", d, {"Asym": "1 + Treatment + (1 | Tree)"}
    )
    assert pr.beta_names == ("Asym.Intercept", "Asym.Treatment[T.B]", "xmid", "scal")
    fit = multilevel.nlfit(
        "circumference ~ SSlogis(age, Asym, xmid, scal)", d, {"Asym": "1 + Treatment + (1 | Tree)"}
    )
    assert fit.converged and fit.fixef.size == 4
    # the treatment effect moves the asymptote of trees 2, 4, 5 (B) against 1, 3 (A)
    pred = fit.predict(d, conditional=False)
    late = d["age"] == d["age"].max()
    assert np.ptp(pred[late.to_numpy()]) > 1.0


def test_the_response_in_its_own_mean_is_refused():
    d = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0], "x": [1.0, 2.0, 3.0, 4.0], "g": list("aabb")})
    with pytest.raises(FormulaError, match="appears in its own mean"):
        multilevel.nlfit("y ~ a * y / (x + 1)", d, {"a": "1 + (1 | g)"}, start={"a": 1.0})
