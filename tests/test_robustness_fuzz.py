"""Property-based robustness of every entry point (issue 18): random formulas from
the package's grammar on frames of every dtype and missing-value pattern, over
every family and link. The property: a multilevel error with a message, or a
result whose summary and ``str`` work and whose numbers are finite when it says
it converged; never a raw exception, never ``converged=True`` with a NaN.

The default profile stays short; ``-m slow`` runs the long one. Strategies (not
random draws) let hypothesis shrink a failure to a minimal formula and frame.
"""

from __future__ import annotations

import contextlib
import io
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import multilevel
from multilevel import crt
from multilevel.errors import ModelError, MultilevelError

FAMILY_LINKS = {
    "gaussian": [None, "identity", "log", "inverse"],
    "binomial": [None, "logit", "probit", "cloglog", "log"],
    "poisson": [None, "log", "identity", "sqrt"],
    "Gamma": [None, "inverse", "log", "identity"],
    "inverse_gaussian": [None, "1/mu^2", "log", "identity"],
    "negative_binomial": [None, "log", "identity", "sqrt"],
}
RESPONSES = {
    "gaussian": ["y", "yc", "pos"],
    "binomial": ["yb", "cbind(s, f)", "yprop"],
    "poisson": ["yc", "y"],
    "Gamma": ["pos", "y"],
    "inverse_gaussian": ["pos"],
    "negative_binomial": ["yc", "pos"],
}
FIXED = ["x1", "x2", "C(x2)", "c1", "x1:x2", "x1*x2", "poly(x1, 2)", "I(x1^2)", "offset(x1)", "t1", "b1"]
RANDOM = ["(1|g1)", "(1|g2)", "(x1|g1)", "(1+x1+x2|g1)", "(1|g1/g2)", "(1|g1:g2)", "(x1||g2)", "(c1|g2)"]

SHORT = settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
LONG = settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))


@st.composite
def columns(draw: st.DrawFn, n: int) -> np.ndarray:
    """A predictor column: floats, ints, bools (plain or object), constants, huge or tiny."""
    kind = draw(st.sampled_from(["float", "int", "bool", "boolobj", "const", "huge", "tiny"]))
    vals = draw(st.lists(st.floats(-3, 3, allow_nan=False), min_size=n, max_size=n))
    x = np.asarray(vals, dtype=float)
    if kind == "int":
        return np.round(x).astype(int)
    if kind == "bool":
        return x > 0
    if kind == "boolobj":
        return np.array(list(x > 0), dtype=object)
    if kind == "const":
        return np.ones(n)
    if kind == "huge":
        return x * 1e150
    if kind == "tiny":
        return x * 1e-150
    return x


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(1, 30))
    d: dict[str, object] = {"x1": draw(columns(n)), "x2": draw(columns(n))}
    if draw(st.booleans()):
        d["x2"] = np.array(d["x1"], copy=True)  # a duplicated column under another name
    for g in ("g1", "g2"):
        k = draw(st.integers(1, n))
        codes = draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n))
        kind = draw(st.sampled_from(["str", "int", "category", "float", "bool"]))
        if kind == "str":
            d[g] = np.array([f"l{c}" for c in codes], dtype=object)
        elif kind == "int":
            d[g] = np.asarray(codes)
        elif kind == "float":  # read as its values by the materializer, as int and bool are
            d[g] = np.asarray(codes, dtype=float) + 0.5
        elif kind == "bool":
            d[g] = np.asarray(codes) % 2 == 0
        else:
            d[g] = pd.Categorical([f"c{c}" for c in codes])
    y = np.asarray(draw(st.lists(st.floats(-5, 5, allow_nan=False), min_size=n, max_size=n)))
    d["y"] = y
    d["pos"] = np.exp(y)
    d["yc"] = np.round(np.exp(y / 2)).astype(int)
    d["yb"] = y > 0
    trials = np.asarray(draw(st.lists(st.integers(1, 6), min_size=n, max_size=n)))
    d["s"] = np.minimum(np.abs(np.round(y)).astype(int), trials)
    d["f"] = trials - d["s"]
    d["yprop"] = d["s"] / trials
    d["c1"] = pd.Categorical(np.where(y > 1, "a", np.where(y > -1, "b", "c")))
    d["b1"] = y < 0.5
    d["t1"] = pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(n), unit="D")
    df = pd.DataFrame(d)
    for col in draw(st.lists(st.sampled_from(list(df.columns)), max_size=2, unique=True)):
        rows = draw(st.lists(st.integers(0, n - 1), max_size=n, unique=True))
        s = df[col].astype(object)
        s.iloc[rows] = None
        df[col] = s
    return df


@st.composite
def fits(draw: st.DrawFn) -> dict[str, object]:
    family = draw(st.sampled_from(list(FAMILY_LINKS)))
    link = draw(st.sampled_from(FAMILY_LINKS[family]))
    fixed = draw(st.lists(st.sampled_from(FIXED), max_size=3, unique=True))
    lead = draw(st.sampled_from(["", "0 + ", "1 + "]))
    random = draw(st.lists(st.sampled_from(RANDOM), min_size=1, max_size=2, unique=True))
    rhs = lead + " + ".join(fixed) if fixed else (lead.strip(" +") or "1")
    formula = f"{draw(st.sampled_from(RESPONSES[family]))} ~ {rhs} + {' + '.join(random)}"
    kw: dict[str, object] = {"family": family, "link": link}
    if family == "gaussian" and link in (None, "identity"):
        kw["reml"] = draw(st.booleans())
    else:
        kw["nagq"] = draw(st.sampled_from([1, 5, 25]))
    return {"formula": formula, "kw": kw}


def _finite(x: object) -> bool:
    return bool(np.all(np.isfinite(np.asarray(x, dtype=float))))


def _check_fit(m: object) -> None:
    assert m.summary() and str(m)  # type: ignore[attr-defined]
    se = m.fixef_se  # type: ignore[attr-defined]
    m.predict()  # type: ignore[attr-defined]
    m.ranef  # type: ignore[attr-defined]  # noqa: B018
    if m.converged:  # type: ignore[attr-defined]
        assert _finite(m.loglik), m  # type: ignore[attr-defined]
        assert _finite(m.fixef) and _finite(se) and _finite(m.theta), m  # type: ignore[attr-defined]


@contextlib.contextmanager
def _ours():
    """Only multilevel's own errors may escape; they must say something."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        except MultilevelError as e:
            assert str(e).strip()


def _fit_property(case: dict[str, object], df: pd.DataFrame) -> None:
    with _ours():
        _check_fit(multilevel.fit(case["formula"], df, **case["kw"]))  # type: ignore[arg-type]


def _gee_property(case: dict[str, object], df: pd.DataFrame, corstr: str) -> None:
    formula = str(case["formula"]).split(" + (")[0]
    kw = dict(case["kw"])  # type: ignore[call-overload]
    kw.pop("reml", None), kw.pop("nagq", None)
    with _ours():
        m = multilevel.gee(formula, df, "g1", corstr=corstr, **kw)
        assert m.summary() and str(m)
        assert _finite(m.coef) and _finite(m.se)


def _crt_property(df: pd.DataFrame, outcome: str, method: str, icc_method: str) -> None:
    df = df.assign(arm=[len(str(v)) % 2 for v in df["g1"]])
    with _ours():
        r = crt.analyze(df, outcome=outcome, arm="arm", cluster="g1", method=method)
        assert str(r)
    with _ours():
        assert str(crt.icc(df, outcome, "g1", method=icc_method))


def _cli_property(case: dict[str, object], df: pd.DataFrame, tmp_path: object) -> None:
    from multilevel.cli.parser import build_parser

    path = f"{tmp_path}/d.csv"
    df.to_csv(path, index=False)
    kw = case["kw"]
    argv = ["fit", path, str(case["formula"]), "--family", str(kw["family"])]  # type: ignore[index]
    if kw.get("link"):  # type: ignore[attr-defined]
        argv += ["--link", str(kw["link"])]  # type: ignore[index]
    args = build_parser().parse_args(argv)
    with _ours(), contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        args.func(args)  # the command itself: main() would turn any ValueError into a message


def _sample_property(case: dict[str, object], df: pd.DataFrame, draws: int) -> None:
    kw = {k: v for k, v in dict(case["kw"]).items() if k in ("family", "link")}  # type: ignore[call-overload]
    with _ours():
        if draws == 0:
            from multilevel.bayes.program import Structure

            m = multilevel.Model(case["formula"], df, **kw)  # type: ignore[arg-type]
            Structure.from_spec(m.spec, m.family)
            return
        post = multilevel.sample(
            case["formula"],
            df,
            chains=1,
            draws=draws,
            warmup=draws,
            progress=False,
            **kw,  # type: ignore[arg-type]
        )
        assert str(post)


# ---- the default (short) profile ---------------------------------------------------
@SHORT
@given(case=fits(), df=frames())
def test_fit_never_crashes(case, df):
    _fit_property(case, df)


@SHORT
@given(case=fits(), df=frames(), corstr=st.sampled_from(["exchangeable", "independence", "ar1"]))
def test_gee_never_crashes(case, df, corstr):
    _gee_property(case, df, corstr)


@settings(SHORT, max_examples=10)
@given(
    df=frames(),
    outcome=st.sampled_from(["y", "yb", "yc"]),
    method=st.sampled_from(["auto", "lmm", "gee", "glmm", "cluster_t"]),
    icc_method=st.sampled_from(["anova", "reml", "latent"]),
)
def test_crt_never_crashes(df, outcome, method, icc_method):
    _crt_property(df, outcome, method, icc_method)


@settings(SHORT, max_examples=8)
@given(case=fits(), df=frames())
def test_cli_never_crashes(case, df, tmp_path_factory):
    _cli_property(case, df, tmp_path_factory.mktemp("cli"))


@settings(SHORT, max_examples=10)
@given(case=fits(), df=frames())
def test_sample_model_building_never_crashes(case, df):
    _sample_property(case, df, draws=0)


# ---- regression cases the generator found ------------------------------------------
def _no_raw(formula, data, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            m = multilevel.fit(formula, data, **kw)
        except MultilevelError as e:
            return e
    _check_fit(m)
    return m


def test_binomial_saturated_five_rows():
    d = pd.DataFrame({
        "s": [1, 2, 0, 3, 1], "f": [2, 0, 1, 1, 2], "x1": [0.13, -0.13, 0.64, 0.1, -0.54],
        "x2": [1, 2, 1, 2, 3], "x3": [0.36, 1.3, 0.95, -0.7, -1.27], "g2": list("aabbc"),
    })  # fmt: skip
    _no_raw("cbind(s, f) ~ C(x2) + x3:x1 + poly(x1, 2) + (x1|g2)", d, family="binomial")


def test_inverse_gaussian_three_rows():
    d = pd.DataFrame({"pos": [0.01196, 6.922, 4.526], "g1": ["a", "b", "b"]})
    r = _no_raw("pos ~ (1|g1)", d, family="inverse_gaussian")
    assert isinstance(r, ModelError) or not r.converged or _finite(r.fixef_se)


def test_reml_without_residual_df_is_an_error():
    d = pd.DataFrame({"y": [1.0, 2.0, 4.0, 3.0], "x": [0.0, 1.0, 2.0, 5.0], "g": list("aabb")})
    with pytest.raises(ModelError, match="REML needs more observations"):
        multilevel.fit("y ~ C(x) + (1|g)", d)


def test_offset_of_a_text_column_is_an_error():
    d = pd.DataFrame({"y": np.arange(6.0), "o": list("abcabc"), "g": list("aabbcc")})
    with pytest.raises(multilevel.errors.DataError, match="one number per row"):
        multilevel.fit("y ~ offset(o) + (1|g)", d)


def test_gee_without_fixed_effects_is_an_error():
    d = pd.DataFrame({"y": np.arange(8.0), "g": np.repeat([0, 1, 2, 3], 2)})
    with pytest.raises(ModelError, match="no fixed effects"):
        multilevel.gee("y ~ 0", d, "g")


def test_quadrature_grid_is_bounded():
    rng = np.random.default_rng(1)
    d = pd.DataFrame({"y": rng.poisson(2, 40), "x1": rng.normal(size=40), "x2": rng.normal(size=40),
                      "g": np.repeat(np.arange(8), 5)})  # fmt: skip
    with pytest.raises(ModelError, match="nodes per group"):
        multilevel.fit("y ~ 1 + (1 + x1 + x2 | g)", d, family="poisson", nagq=25)


def test_time_limit_gives_a_non_convergence_verdict():
    from multilevel.control import FitControl
    from multilevel.errors import ConvergenceWarning

    rng = np.random.default_rng(2)
    d = pd.DataFrame({"y": rng.poisson(2, 60), "x": rng.normal(size=60), "g": np.repeat(np.arange(12), 5)})
    with pytest.warns(ConvergenceWarning, match="time limit"):
        m = multilevel.fit("y ~ x + (x | g)", d, family="poisson", control=FitControl(max_seconds=1e-3))
    assert not m.converged
    with pytest.raises(ModelError, match="max_seconds"):
        FitControl(max_seconds=0)


def test_icc_with_one_row_per_cluster_is_an_error():
    d = pd.DataFrame({"y": [1.0, 2.0, 3.0], "c": ["a", "b", "c"]})
    with pytest.raises(multilevel.errors.DataError, match="more observations than clusters"):
        crt.icc(d, "y", "c")


# ---- the long profile ------------------------------------------------------------
@pytest.mark.slow
@LONG
@given(case=fits(), df=frames())
def test_fit_never_crashes_long(case, df):
    _fit_property(case, df)


@pytest.mark.slow
@LONG
@given(case=fits(), df=frames(), corstr=st.sampled_from(["exchangeable", "independence", "ar1"]))
def test_gee_never_crashes_long(case, df, corstr):
    _gee_property(case, df, corstr)


@pytest.mark.slow
@settings(LONG, max_examples=100)
@given(
    df=frames(),
    outcome=st.sampled_from(["y", "yb", "yc"]),
    method=st.sampled_from(["auto", "lmm", "gee", "glmm", "cluster_t"]),
    icc_method=st.sampled_from(["anova", "reml", "latent"]),
)
def test_crt_never_crashes_long(df, outcome, method, icc_method):
    _crt_property(df, outcome, method, icc_method)


@pytest.mark.slow
@settings(LONG, max_examples=5)
@given(case=fits(), df=frames())
def test_sample_never_crashes_long(case, df):
    _sample_property(case, df, draws=5)


def test_dates_in_the_formula_are_named():
    d = pd.DataFrame(
        {"y": np.arange(8.0), "t": pd.date_range("2020-01-01", periods=8), "g": list("aabbccdd")}
    )
    with pytest.raises(multilevel.errors.FormulaError, match="'t' holds dates"):
        multilevel.fit("y ~ t + (1|g)", d)


def test_gee_stops_at_the_time_limit():
    from multilevel.errors import ConvergenceWarning
    from multilevel.optim.optimize import time_limit

    rng = np.random.default_rng(3)
    d = pd.DataFrame({"y": rng.poisson(2, 40), "x": rng.normal(size=40), "g": np.repeat(np.arange(8), 5)})
    with time_limit(1e-9), pytest.warns(ConvergenceWarning, match="the time limit"):
        m = multilevel.gee("y ~ x", d, "g", family="poisson")
    assert not m.estimate.converged
