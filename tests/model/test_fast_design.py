"""The NumPy design of plain formulas equals formulaic's: columns, names, values, new data."""

from __future__ import annotations

import warnings
from contextlib import contextmanager
from unittest import mock

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import multilevel
from multilevel.errors import MultilevelError
from multilevel.model import design as design_module
from multilevel.model.design import build_model
from multilevel.model.fast_design import fast_matrices
from multilevel.model.hypotheses import fixed_terms
from multilevel.model.matrices import DeferredSpec
from multilevel.model.newdata import design_for

TERMS = [
    "1",
    "0",
    "a",
    "b",
    "k",
    "f",
    "g",
    "a:b",
    "b:a",
    "a*b",
    "k:a:b",
    "a*k*b",
    "b + a*b",
    "f + a",
    "log(a)",
]
RANDOM = ["1", "a", "0 + a", "a + b", "1 + f", "0 + f", "k:a"]
LETTERS = ["u", "V", "w", "x1", "Z"]


@contextmanager
def formulaic_only():
    with mock.patch.object(design_module, "fast_matrices", lambda *args: None):
        yield


@st.composite
def frames(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(8, 24))
    floats = st.floats(-1e3, 1e3, allow_nan=False, width=64)
    cats = draw(st.lists(st.sampled_from(LETTERS), min_size=1, max_size=5, unique=True))
    return pd.DataFrame(
        {
            "y": draw(st.lists(floats, min_size=n, max_size=n)),
            "a": draw(st.lists(floats, min_size=n, max_size=n)),
            "b": np.asarray(draw(st.lists(floats, min_size=n, max_size=n))) / 7.0,
            "k": draw(st.lists(st.integers(-50, 50), min_size=n, max_size=n)),
            "f": pd.Series(draw(st.lists(st.sampled_from(LETTERS), min_size=n, max_size=n)), dtype=object),
            "g": pd.Categorical(
                draw(st.lists(st.sampled_from(cats), min_size=n, max_size=n)), categories=cats
            ),
            "grp": [f"s{i % 4}" for i in range(n)],
        }
    )


def _build(formula: str, df: pd.DataFrame) -> tuple | type:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return build_model(formula, df)
    except MultilevelError as exc:
        return type(exc)


def _same_design(fast: tuple, slow: tuple, df: pd.DataFrame) -> None:
    (fs, fd), (ss, sd) = fast, slow
    np.testing.assert_array_equal(fd.y, sd.y)
    np.testing.assert_array_equal(fd.X, sd.X)
    assert (fs.fixed_names, fs.dropped_fixed, fs.theta_names) == (
        ss.fixed_names,
        ss.dropped_fixed,
        ss.theta_names,
    )
    assert fs.columns == ss.columns
    assert [(g.name, g.levels, [(t.expr, t.columns) for t in g.terms]) for g in fs.groupings] == [
        (g.name, g.levels, [(t.expr, t.columns) for t in g.terms]) for g in ss.groupings
    ]
    for a, b in zip(fd.groups, sd.groups):
        np.testing.assert_array_equal(a.codes, b.codes)
        np.testing.assert_array_equal(a.values, b.values)
    assert fixed_terms(fs) == fixed_terms(ss)
    new = df.iloc[::-1].reset_index(drop=True)
    fn, sn = design_for(fs, new), design_for(ss, new)
    np.testing.assert_array_equal(fn.X, sn.X)
    for a, b in zip(fn.groups, sn.groups):
        np.testing.assert_array_equal(a.values, b.values)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    df=frames(),
    fixed=st.lists(st.sampled_from(TERMS), min_size=1, max_size=4),
    random=st.sampled_from(RANDOM),
)
def test_fast_design_equals_formulaic(df: pd.DataFrame, fixed: list[str], random: str) -> None:
    formula = f"y ~ {' + '.join(fixed)} + ({random} | grp)"
    fast = _build(formula, df)
    with formulaic_only():
        slow = _build(formula, df)
    if isinstance(slow, type) or isinstance(fast, type):
        assert fast == slow
        return
    _same_design(fast, slow, df)


def test_plain_formulas_skip_formulaic() -> None:
    d = multilevel.load_dataset("sleepstudy")
    spec, _ = build_model("Reaction ~ Days + (Days | Subject)", d)
    assert isinstance(spec.fixed_spec, DeferredSpec)
    assert list(spec.fixed_spec.column_names) == ["Intercept", "Days"]  # the real spec, on demand


@pytest.mark.parametrize(
    "fixed",
    ["log(Days)", "Days - 1", "C(Days)", "(Days + 1)", "poly(Days, 2)", "Days:Subject", "0 + Subject"],
)
def test_other_formulas_go_to_formulaic(fixed: str) -> None:
    d = multilevel.load_dataset("sleepstudy").assign(Subject=lambda x: x["Subject"].astype(str))
    parsed = multilevel.parse_formula(f"Reaction ~ {fixed} + (1 | Subject)")
    assert fast_matrices(parsed, d, "", []) is None


def test_more_columns_than_rows_drops_the_extra_ones() -> None:
    # found by the property above: QR's R has min(n, p) diagonal entries
    X = np.array([[1.0, 2.0, 3.0], [1.0, 5.0, 1.0]])
    with pytest.warns(multilevel.errors.RankDeficiencyWarning, match="c3"):
        kept, names, dropped = design_module._drop_rank_deficient(X, ["c1", "c2", "c3"])
    assert (names, dropped, kept.shape) == (["c1", "c2"], ["c3"], (2, 2))
