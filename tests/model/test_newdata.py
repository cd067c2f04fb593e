"""New data through the fitted spec: levels by name, unseen levels, missing values, offsets."""

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import multilevel
from multilevel.errors import DataError
from multilevel.model.design import build_model
from multilevel.model.newdata import design_for

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def cbpp_spec():
    spec, design = build_model(CBPP, multilevel.load_dataset("cbpp"), family="binomial")
    return spec, design


@pytest.fixture(scope="module")
def phased():
    """sleepstudy with an integer-coded categorical ``phase`` (categories 0, 1, 2)."""
    d = multilevel.load_dataset("sleepstudy")
    d["phase"] = pd.Categorical(d.Days.to_numpy() // 4)
    d["o"] = np.linspace(0, 1, len(d))
    return d


def _dummies(period):
    return np.column_stack([np.ones(len(period))] + [np.asarray(period) == k for k in (2, 3, 4)]).astype(
        float
    )


@pytest.mark.parametrize("values", [[1, 2, 3, 4], [1.0, 2.0, 3.0, 4.0], ["1", "2", "3", "4"]])
def test_levels_matched_by_name(cbpp_spec, values):
    spec, _ = cbpp_spec
    d = design_for(spec, pd.DataFrame({"period": values, "herd": ["1", "1", "2", "2"]}))
    np.testing.assert_array_equal(d.X, _dummies([1, 2, 3, 4]))
    np.testing.assert_array_equal(d.groups[0].codes, [0, 0, 1, 1])


def test_integer_categories_matched_by_strings(phased):
    spec, _ = build_model("Reaction ~ phase + (1 | Subject)", phased)
    assert spec.column("phase").levels == (0, 1, 2)
    d = design_for(spec, pd.DataFrame({"phase": ["2", "0"], "Subject": ["308", "309"]}))
    np.testing.assert_array_equal(d.X, [[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]])


@pytest.mark.parametrize("kind", ["polars", "pyarrow", "dict"])
def test_other_table_types(cbpp_spec, kind):
    spec, _ = cbpp_spec
    new = pd.DataFrame({"period": [4, 1, 3], "herd": ["3", "1", "2"]})
    if kind == "polars":
        pl = pytest.importorskip("polars")
        table = pl.from_pandas(new)
    elif kind == "pyarrow":
        pa = pytest.importorskip("pyarrow")
        table = pa.Table.from_pandas(new)
    else:
        table = {c: new[c].to_numpy() for c in new.columns}
    d = design_for(spec, table)
    np.testing.assert_array_equal(d.X, _dummies([4, 1, 3]))
    np.testing.assert_array_equal(d.groups[0].codes, [2, 0, 1])


def test_unseen_fixed_level_is_an_error(cbpp_spec):
    spec, _ = cbpp_spec
    new = pd.DataFrame({"period": ["5", "1", "0"], "herd": ["1", "1", "1"]})
    with pytest.raises(
        DataError, match=r"column 'period' has levels '0', '5'.*levels are '1', '2', '3', '4'"
    ):
        design_for(spec, new)


def test_unobserved_category_is_an_error():
    d = multilevel.load_dataset("sleepstudy")
    d["phase"] = pd.Categorical(np.where(d.Days < 5, "early", "late"), categories=["early", "late", "never"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec, _ = build_model("Reaction ~ phase + (1 | Subject)", d)
    with pytest.raises(DataError, match="'never'"):
        design_for(spec, pd.DataFrame({"phase": ["never"], "Subject": ["308"]}))


def test_unseen_value_inside_C_is_an_error(phased):
    spec, _ = build_model("Reaction ~ C(Days) + (1 | Subject)", phased)
    assert not spec.column("Days").categorical  # categorical only through C()
    with pytest.raises(DataError, match="outside the categories"):
        design_for(spec, pd.DataFrame({"Days": [3, 12], "Subject": ["308", "308"]}))


def test_numeric_column_given_as_text(phased):
    spec, _ = build_model("Reaction ~ Days + (1 | Subject)", phased)
    d = design_for(spec, pd.DataFrame({"Days": ["3", "4.5"], "Subject": ["308", "308"]}))
    np.testing.assert_array_equal(d.X[:, 1], [3.0, 4.5])
    with pytest.raises(DataError, match=r"column 'Days' holds 'three'.*numeric"):
        design_for(spec, pd.DataFrame({"Days": ["three"], "Subject": ["308"]}))


def test_missing_columns_are_named(cbpp_spec, phased):
    spec, _ = cbpp_spec
    with pytest.raises(DataError, match=r"columns 'period'.*'herd'.*not found"):
        design_for(spec, pd.DataFrame({"x": [1]}))
    # population-level designs need no grouping column
    d = design_for(spec, pd.DataFrame({"period": [2]}), groups=False)
    assert d.groups == () and d.X.shape == (1, 4)
    off_spec, _ = build_model("Reaction ~ Days + (1 | Subject)", phased, offset="o")
    with pytest.raises(DataError, match="'o'"):
        design_for(off_spec, pd.DataFrame({"Days": [1], "Subject": ["308"]}))


def test_missing_values_raise_or_pass(cbpp_spec):
    spec, _ = cbpp_spec
    new = pd.DataFrame({"period": [1, None, 3, 4], "herd": ["1", "2", None, "4"]})
    with pytest.raises(
        DataError, match=r"2 of 4 rows of newdata have missing values in columns period \(1\), herd \(1\)"
    ):
        design_for(spec, new)
    d = design_for(spec, new, na_action="pass")
    assert d.n == 2 and d.n_input == 4
    np.testing.assert_array_equal(d.rows, [0, 3])
    np.testing.assert_array_equal(d.X, _dummies([1, 4]))
    np.testing.assert_array_equal(d.to_input_rows(np.array([1.0, 2.0])), [1.0, np.nan, np.nan, 2.0])
    empty = design_for(spec, pd.DataFrame({"period": [None], "herd": ["1"]}), na_action="pass")
    assert empty.n == 0 and empty.X.shape == (0, 4)
    assert np.isnan(empty.to_input_rows(np.zeros(0))).all()


def test_offset_sources(phased):
    f = "Reaction ~ Days + (1 | Subject)"
    new = pd.DataFrame({"Days": [1, 2], "Subject": ["308", "308"], "o": [5.0, 6.0], "z": [1.0, 2.0]})
    spec, _ = build_model(f, phased, offset="o")
    np.testing.assert_array_equal(design_for(spec, new).offset, [5.0, 6.0])
    np.testing.assert_array_equal(design_for(spec, new, offset="z").offset, [1.0, 2.0])
    spec, _ = build_model(f, phased, offset=phased.o.to_numpy())
    with pytest.raises(DataError, match="offset= as an array"):
        design_for(spec, new)
    np.testing.assert_array_equal(design_for(spec, new, offset=np.array([7.0, 8.0])).offset, [7.0, 8.0])
    spec, _ = build_model("Reaction ~ Days + offset(o) + (1 | Subject)", phased)
    np.testing.assert_array_equal(design_for(spec, new).offset, [5.0, 6.0])
    with pytest.raises(DataError, match="fitted without offset="):
        design_for(spec, new, offset="z")
    spec, _ = build_model("Reaction ~ Days + offset(o) + (1 | Subject)", phased.assign(z=1.0), offset="z")
    np.testing.assert_array_equal(design_for(spec, new).offset, [6.0, 8.0])  # offset= plus offset()


_PERIOD = st.one_of(st.integers(0, 6), st.sampled_from(["1", "2", "4", "x"]), st.floats(0, 5), st.none())
_HERD = st.one_of(st.integers(0, 20), st.sampled_from(["1", "15", "zz"]), st.none())


def _name(v):
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


@settings(max_examples=60, deadline=None)
@given(rows=st.lists(st.tuples(_PERIOD, _HERD), max_size=8), as_category=st.booleans())
def test_any_newdata_gives_a_design_or_our_error(cbpp_spec, rows, as_category):
    """Whatever the values and dtypes: the design of the complete rows with each row's
    fitted dummies, or a DataError naming 'period'; never a silent recoding."""
    spec, _ = cbpp_spec
    new = pd.DataFrame(rows, columns=["period", "herd"], dtype=object)
    if as_category:
        new = new.astype("category")
    complete = [i for i, (p, h) in enumerate(rows) if p is not None and h is not None]
    periods = [_name(rows[i][0]) for i in complete]
    try:
        d = design_for(spec, new, na_action="pass")
    except DataError as exc:
        assert "'period'" in str(exc) and not set(periods) <= {"1", "2", "3", "4"}
        return
    assert set(periods) <= {"1", "2", "3", "4"}
    np.testing.assert_array_equal(d.rows, complete)
    np.testing.assert_array_equal(d.X, _dummies([int(p) for p in periods]).reshape(-1, 4))
