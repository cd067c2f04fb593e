"""The one materializer: what build_model records in the spec and builds for GEE."""

import numpy as np
import pandas as pd
import pytest

import multilevel
from multilevel.errors import DataError, FormulaError, MissingDataWarning
from multilevel.model.design import build_model
from multilevel.model.spec import ARRAY_ARG

CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def cbpp():
    return multilevel.load_dataset("cbpp")


def test_spec_records_predictor_columns(cbpp):
    spec, _ = build_model(CBPP, cbpp, family="binomial")
    # the response's columns and the grouping column are not predictor columns
    assert [c.name for c in spec.columns] == ["period"]
    period = spec.column("period")
    assert period.categorical and period.contrasts == "treatment"
    assert period.levels == ("1", "2", "3", "4") and period.observed == ("1", "2", "3", "4")
    sleep = multilevel.load_dataset("sleepstudy")
    spec, _ = build_model("Reaction ~ Days + (Days | Subject)", sleep)
    days = spec.column("Days")
    assert not days.categorical and days.dtype == "int64" and days.levels == ()


def test_unused_category_is_a_level_but_not_observed():
    d = multilevel.load_dataset("sleepstudy")
    d["phase"] = pd.Categorical(np.where(d.Days < 5, "early", "late"), categories=["early", "late", "never"])
    with pytest.warns(Warning, match="phase"):  # the empty level's column is rank deficient
        spec, _ = build_model("Reaction ~ phase + (1 | Subject)", d)
    phase = spec.column("phase")
    assert phase.levels == ("early", "late", "never")
    assert phase.observed == ("early", "late")


@pytest.mark.parametrize(
    "kwargs, want",
    [({}, (None, None, False)), ({"offset": "o", "weights": "w"}, ("o", "w", True))],
)
def test_spec_records_offset_and_weights_columns(kwargs, want):
    d = multilevel.load_dataset("sleepstudy").assign(o=1.0, w=2.0)
    spec, _ = build_model("Reaction ~ Days + (1 | Subject)", d, **kwargs)
    assert (spec.offset, spec.weights, spec.has_offset) == want


def test_spec_records_array_arguments_and_offset_terms():
    d = multilevel.load_dataset("sleepstudy").assign(o=1.0)
    spec, design = build_model(
        "Reaction ~ Days + (1 | Subject)", d, offset=np.ones(180), weights=np.ones(180)
    )
    assert spec.offset == ARRAY_ARG and spec.weights == ARRAY_ARG
    spec, design = build_model("Reaction ~ Days + offset(2 * o) + (1 | Subject)", d)
    assert spec.offset is None and spec.has_offset
    np.testing.assert_array_equal(design.offset, np.full(180, 2.0))
    assert [c.name for c in spec.columns] == ["Days", "o"]


def test_rows_used_are_recorded():
    d = multilevel.load_dataset("sleepstudy")
    d.loc[[3, 10], "Reaction"] = np.nan
    with pytest.warns(MissingDataWarning, match="dropped 2 of 180"):
        spec, design = build_model("Reaction ~ Days + (1 | Subject)", d)
    assert spec.n_missing == 2 and design.n == 178 and design.n_input == 180
    np.testing.assert_array_equal(design.rows, np.delete(np.arange(180), [3, 10]))
    full = design.to_input_rows(np.arange(178.0))
    assert np.isnan(full[[3, 10]]).all() and full[11] == 9.0


def test_marginal_model_has_clusters_and_no_random_terms():
    d = multilevel.load_dataset("dietox")
    spec, design = build_model("Weight ~ Time + Cu", d, cluster="Pig")
    assert spec.groupings == () and design.groups == () and spec.theta_map.size == 0
    assert spec.cluster is not None and spec.cluster.name == "Pig"
    assert spec.cluster.n_levels == d.Pig.nunique()
    levels = np.array(spec.cluster.levels)
    np.testing.assert_array_equal(levels[design.clusters], d.Pig.astype(str).to_numpy())
    assert spec.column("Cu").categorical
    with pytest.raises(FormulaError, match="give the clusters with groups="):
        build_model("Weight ~ Time + (1 | Pig)", d, cluster="Pig")
    with pytest.raises(FormulaError, match="not a mixed model"):
        build_model("Weight ~ Time", d)
    with pytest.raises(DataError, match="'Pigg'"):
        build_model("Weight ~ Time", d, cluster="Pigg")


def test_marginal_model_binomial_forms_and_weights(cbpp):
    _, design = build_model(
        "cbind(incidence, size - incidence) ~ period", cbpp, family="binomial", cluster="herd"
    )
    np.testing.assert_allclose(design.y, cbpp.incidence / cbpp["size"])
    np.testing.assert_allclose(design.weights, cbpp["size"])  # trials are prior weights
    w = np.arange(1.0, 57.0)
    _, design = build_model(
        "cbind(incidence, size - incidence) ~ period", cbpp, family="binomial", cluster="herd", weights=w
    )
    np.testing.assert_allclose(design.weights, w * cbpp["size"])


@pytest.mark.parametrize("dtype", ["string", "string[pyarrow]", "arrow"])
def test_string_columns_of_every_dtype_are_categorical(dtype):
    import pyarrow as pa

    d = multilevel.load_dataset("sleepstudy")
    d["phase"] = np.where(d.Days < 5, "early", "late").astype(object)
    _, ref = build_model("Reaction ~ phase + (1 | Subject)", d)
    typed = d.assign(phase=d.phase.astype(pd.ArrowDtype(pa.string()) if dtype == "arrow" else dtype))
    spec, design = build_model("Reaction ~ phase + (1 | Subject)", typed)
    assert spec.fixed_names == ("Intercept", "phase[T.late]")
    np.testing.assert_array_equal(design.X, ref.X)


def test_a_design_keeps_no_copy_of_what_is_one_everywhere():
    """Intercepts are read-only views of one number, level codes int32, and the rows'
    positions are not stored when every row is used (MovieLens' 27 million rows: 1 GB)."""
    d = multilevel.load_dataset("sleepstudy").assign(half=lambda t: t.Days // 5)
    _, design = build_model("Reaction ~ 1 + (1 | Subject) + (0 + Days | half)", d)
    assert design.rows is None and design.n_input == 180
    np.testing.assert_array_equal(design.to_input_rows(np.arange(180.0)), np.arange(180.0))
    assert design.X.strides == (0, 0) and not design.X.flags.writeable and np.all(design.X == 1.0)
    intercept, slope = design.groups
    assert intercept.values.strides[0] == 0 and np.all(intercept.values == 1.0)
    np.testing.assert_array_equal(slope.values[:, 0], d["Days"].to_numpy(dtype=float))
    assert intercept.codes.dtype == np.int32 and intercept.codes.max() == 17
    _, design2 = build_model("Reaction ~ Days + (Days | Subject)", d)
    assert design2.X.flags.writeable and design2.groups[0].values.flags.writeable
