"""Property-based robustness of the nonlinear and latent-covariate entry points (issue 17):
``nlfit`` over random mean expressions, parameter formulas, families and starts; ``fit``
with ``me()`` terms; the model building of ``sample`` with ``me()`` / ``mi()`` terms and
with nonlinear formulas. The property (as tests/test_robustness_fuzz.py): a multilevel
error with a message, or a result whose summary works and whose numbers are finite
when it says it converged; never a raw exception.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import multilevel

from .test_robustness_fuzz import LONG, SHORT, _finite, _ours, frames

EXPRESSIONS = {
    "a * exp(b * x1)": ("a", "b"),
    "a / (1 + exp((b - x1) / c))": ("a", "b", "c"),
    "a + b * x1": ("a", "b"),
    "exp(a) * (x1 ^ 2 + 1) ^ b": ("a", "b"),
    "log(a + x1)": ("a",),
    "a * x1 / (b + x1)": ("a", "b"),
    "a + b * y": ("a", "b"),  # the response inside its mean: refused
    "a * zz": ("a",),  # neither a column nor a parameter: refused
    "sqrt(a) + b * x2": ("a", "b"),
    "SSlogis(x1, Asym, xmid, scal)": ("Asym", "xmid", "scal"),
    "SSmicmen(x1, Vm, K)": ("Vm", "K"),
}
PARAM_FORMULAS = [
    "1",
    "1 + (1 | g1)",
    "1 + x2 + (1 | g2)",
    "1 + (x2 | g1)",
    "1 + (1 | g1/g2)",
    "1 + (1 | p | g1)",  # brms' ID: correlated with the other parameters' (1 | p | g1)
    "1 + (1 | p | g1) + (0 + x2 | g1)",  # refused: an ID'd term must be alone on g1
]
RESPONSES = {"gaussian": ["y", "pos"], "binomial": ["yb", "yprop"], "poisson": ["yc"]}


@st.composite
def nonlinear(draw: st.DrawFn) -> dict[str, object]:
    expr = draw(st.sampled_from(list(EXPRESSIONS)))
    family = draw(st.sampled_from(list(RESPONSES)))
    params = {k: draw(st.sampled_from(PARAM_FORMULAS)) for k in EXPRESSIONS[expr]}
    if params and draw(st.booleans()):
        params[next(iter(params))] = "1 + (1 | g1)"  # usually a mixed model
    start = None
    if draw(st.booleans()) or family != "gaussian":
        start = {k: draw(st.floats(-2, 3, allow_nan=False)) for k in params}
    kw: dict[str, object] = {"family": family, "start": start}
    response = draw(st.sampled_from(RESPONSES[family]))
    if response == "yprop":
        kw["weights"] = "trials"
    if draw(st.booleans()):
        kw["nagq"] = draw(st.sampled_from([1, 3]))
    return {"formula": f"{response} ~ {expr}", "params": params, "kw": kw}


def _with_trials(df: pd.DataFrame) -> pd.DataFrame:
    return df.assign(trials=df["s"] + df["f"])


def _nlfit_property(case: dict[str, object], df: pd.DataFrame) -> None:
    with _ours():
        m = multilevel.nlfit(case["formula"], _with_trials(df), case["params"], **case["kw"])  # type: ignore[arg-type]
        assert m.summary() and repr(m)
        m.predict()
        if m.converged:
            assert _finite(m.loglik) and _finite(m.fixef) and _finite(m.se), m


@st.composite
def latent_cases(draw: st.DrawFn) -> dict[str, object]:
    term = draw(
        st.sampled_from(
            [
                "me(x1, sdx)",
                "mi(x1)",
                "me(x1, x2)",
                "me(x1, sdx):x2",
                "mi(x1) + x1",
                "me(x1, sdx) * x2",
                "mi(x1) * c1",
                "x2 * me(x1, sdx) + me(x1, sdx):c1",
                "mi(x1) + I(x1**2)",
                "me(x1, sdx) / c1",
            ]
        )
    )
    rest = draw(st.sampled_from(["", " + x2", " + c1"]))
    random = draw(st.sampled_from(["(1 | g1)", "(x2 | g1)", "(1 | g1) + (1 | g2)"]))
    sub = draw(
        st.sampled_from([None, "~ x2", "x1 ~ 1", "~ (1 | g1)", "y ~ x2", "~ x2 + (1 | g2)", "~ (x2 | g1)"])
    )
    return {"formula": f"y ~ {term}{rest} + {random}", "mi": {"x1": sub} if sub and "mi(" in term else None}


def _latent_frame(df: pd.DataFrame, draw_sd: float) -> pd.DataFrame:
    return df.assign(sdx=np.full(len(df), draw_sd))


def _latent_property(case: dict[str, object], df: pd.DataFrame) -> None:
    with _ours():
        m = multilevel.Model(case["formula"], df, mi=case["mi"])  # type: ignore[arg-type]
        from multilevel.bayes.program import Structure

        Structure.from_spec(m.spec, m.family, m.latent_info)
    if "mi(" not in str(case["formula"]):
        with _ours():
            fit = multilevel.fit(case["formula"], df)  # type: ignore[arg-type]
            assert fit.summary() and repr(fit)
            if fit.converged:
                assert _finite(fit.loglik) and _finite(fit.fixef) and _finite(fit.fixef_se), fit


def _nl_sample_building(case: dict[str, object], df: pd.DataFrame) -> None:
    from multilevel.bayes.nonlinear import NlStructure, nl_priors
    from multilevel.model.nonlinear import build_problem

    kw = {k: v for k, v in dict(case["kw"]).items() if k in ("family", "weights")}  # type: ignore[call-overload]
    with _ours():
        pr = build_problem(case["formula"], _with_trials(df), case["params"], **kw)  # type: ignore[arg-type]
        st_ = NlStructure.from_problem(pr)
        nl_priors(st_, pr, {"b": "normal(0, 5)"})


@SHORT
@given(case=nonlinear(), df=frames())
def test_nlfit_never_crashes(case, df):
    _nlfit_property(case, df)


@settings(SHORT, max_examples=15)
@given(case=latent_cases(), df=frames(), sd=st.sampled_from([0.3, 0.0, -1.0, np.inf]))
def test_latent_terms_never_crash(case, df, sd):
    _latent_property(case, _latent_frame(df, sd))


@settings(SHORT, max_examples=15)
@given(case=nonlinear(), df=frames())
def test_nonlinear_sampler_building_never_crashes(case, df):
    _nl_sample_building(case, df)


@pytest.mark.slow
@LONG
@given(case=nonlinear(), df=frames())
def test_nlfit_never_crashes_long(case, df):
    _nlfit_property(case, df)


@pytest.mark.slow
@LONG
@given(case=latent_cases(), df=frames(), sd=st.sampled_from([0.3, 0.0, -1.0, np.inf]))
def test_latent_terms_never_crash_long(case, df, sd):
    _latent_property(case, _latent_frame(df, sd))
