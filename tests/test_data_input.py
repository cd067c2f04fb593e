"""Data in: table types, missing values and the errors bad data get."""

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

import multilevel
from multilevel.errors import DataError, FormulaError, MissingDataWarning, ModelError, RankDeficiencyWarning

F = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def sleep():
    return multilevel.load_dataset("sleepstudy")


@pytest.fixture(scope="module")
def ref_fit(sleep):
    return multilevel.fit(F, sleep)


@pytest.mark.parametrize("kind", ["polars", "pyarrow", "dict"])
def test_table_types_give_the_same_fit(sleep, ref_fit, kind):
    if kind == "polars":
        pl = pytest.importorskip("polars")
        data = pl.from_pandas(sleep.assign(Subject=sleep.Subject.astype(str)))
    elif kind == "pyarrow":
        pa = pytest.importorskip("pyarrow")
        data = pa.Table.from_pandas(sleep)
    else:
        data = {c: sleep[c].to_numpy() for c in sleep.columns}
    m = multilevel.fit(F, data)
    assert m.reml_criterion == pytest.approx(ref_fit.reml_criterion, rel=1e-10)
    np.testing.assert_allclose(m.fixef, ref_fit.fixef, rtol=1e-8)


def test_numeric_grouping_is_categorical(sleep, ref_fit):
    data = sleep.assign(Subject=sleep.Subject.astype(int))
    m = multilevel.fit(F, data)
    assert m.ngroups == {"Subject": 18}
    assert m.reml_criterion == pytest.approx(ref_fit.reml_criterion, rel=1e-10)


def test_missing_rows_dropped_with_count(sleep):
    data = sleep.copy()
    data.loc[[0, 5, 9], "Reaction"] = np.nan
    data.loc[[5, 7], "Days"] = np.nan
    with pytest.warns(MissingDataWarning, match=r"dropped 4 of 180 rows.*Reaction \(3\).*Days \(2\)"):
        m = multilevel.fit(F, data)
    assert m.nobs == 176
    assert m.spec.n_missing == 4
    assert "4 rows with missing values were dropped" in m.summary()
    with pytest.raises(DataError, match="na_action='omit'"):
        multilevel.fit(F, data, na_action="raise")


def test_missing_column_is_named(sleep):
    with pytest.raises(DataError, match=r"'Dayz' \(did you mean 'Days'\?\)"):
        multilevel.fit("Reaction ~ Dayz + (1 | Subject)", sleep)
    with pytest.raises(DataError, match="'Subj'"):
        multilevel.fit("Reaction ~ Days + (1 | Subj)", sleep)


def test_one_level_grouping(sleep):
    data = sleep.assign(one="a")
    with pytest.raises(DataError, match="'one' has 1 level"):
        multilevel.fit("Reaction ~ Days + (1 | one)", data)


def test_constant_response(sleep):
    with pytest.raises(DataError, match="constant"):
        multilevel.fit("c ~ Days + (1 | Subject)", sleep.assign(c=3.0))


def test_too_many_random_effects(sleep):
    with pytest.raises(ModelError, match="levels for 180 observations"):
        multilevel.fit("Reaction ~ 1 + (1 | row)", sleep.assign(row=np.arange(180)))
    small = sleep.iloc[:40].assign(pair=np.arange(40) // 2)
    with pytest.raises(ModelError, match="60 random effects for 40 observations"):
        multilevel.fit("Reaction ~ 1 + (1 + Days + I(Days**2) | pair)", small)


def test_non_finite_values(sleep):
    with pytest.raises(DataError, match="non-finite"):
        multilevel.fit("Reaction ~ Days + (1 | Subject)", sleep.assign(Days=sleep.Days.replace(3, np.inf)))


def test_no_random_effects(sleep):
    with pytest.raises(FormulaError, match="not a mixed model"):
        multilevel.fit("Reaction ~ Days", sleep)


def test_rank_deficient_fixed_effects_dropped(sleep):
    data = sleep.assign(Days2=2 * sleep.Days)
    with pytest.warns(RankDeficiencyWarning, match="Days2"):
        m = multilevel.fit("Reaction ~ Days + Days2 + (1 | Subject)", data)
    assert list(m.fixef.index) == ["Intercept", "Days"]


def test_predict(sleep, ref_fit):
    np.testing.assert_allclose(ref_fit.predict(sleep), ref_fit.fitted, rtol=1e-10)
    pop = ref_fit.predict(sleep, conditional=False)
    np.testing.assert_allclose(pop, ref_fit.fixef["Intercept"] + ref_fit.fixef["Days"] * sleep.Days)
    new = pd.DataFrame({"Days": [0, 1], "Subject": ["308", "999"]})
    with pytest.raises(DataError, match="new_levels='population'"):
        ref_fit.predict(new)
    got = ref_fit.predict(new, new_levels="population")
    assert got[1] == pytest.approx(ref_fit.fixef["Intercept"] + ref_fit.fixef["Days"])
    assert got[0] == pytest.approx(ref_fit.fitted[0])


def test_predict_names_missing_columns_and_keeps_incomplete_rows(ref_fit):
    with pytest.raises(DataError, match=r"'Subject'.*not found"):
        ref_fit.predict(pd.DataFrame({"Days": [1]}))
    with pytest.raises(DataError, match=r"columns 'Days', 'Subject'"):
        ref_fit.predict(pd.DataFrame({"x": [1]}))
    pop = ref_fit.predict(pd.DataFrame({"Days": [1.0, np.nan]}), conditional=False)
    assert pop[0] == pytest.approx(ref_fit.fixef.sum()) and np.isnan(pop[1])


def test_fit_is_immutable_and_to_dict_is_json(ref_fit):
    import dataclasses
    import json

    with pytest.raises(dataclasses.FrozenInstanceError):
        ref_fit.reml = False  # type: ignore[misc]
    d = json.loads(json.dumps(ref_fit.to_dict()))
    assert d["method"] == "REML"
    assert d["fixef"]["Days"]["df"] == pytest.approx(17.0, rel=1e-3)
    assert d["ngroups"] == {"Subject": 18}


def test_singular_fit_warns():
    from multilevel.errors import SingularFitWarning

    with pytest.warns(SingularFitWarning, match="boundary"):
        m = multilevel.fit("Yield ~ 1 + (1 | Batch)", multilevel.load_dataset("Dyestuff2"))
    assert m.singular and m.converged


def test_import_is_light():
    code = (
        "import sys, time; t = time.perf_counter(); import multilevel; "
        "dt = time.perf_counter() - t; "
        "heavy = [m for m in ('jax', 'matplotlib', 'scipy', 'pandas', 'formulaic') if m in sys.modules]; "
        "print(dt, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    dt, heavy = out.split(" ", 1)
    assert float(dt) < 0.3
    assert heavy.strip() == "[]"


def test_prior_weights_match_lme4():
    # lme4 1.1-31: lmer(Reaction ~ Days + (Days|Subject), sleepstudy, weights = 1 + Days %% 3)
    d = multilevel.load_dataset("sleepstudy")
    d["w"] = 1 + (d.Days % 3)
    m = multilevel.fit(F, d, weights="w")
    assert m.reml_criterion == pytest.approx(1733.5435464662, rel=1e-9)
    np.testing.assert_allclose(m.fixef, [249.9507015059, 10.6773686366], rtol=1e-6)
    assert m.sigma == pytest.approx(31.8060474351, rel=1e-5)
    ml = multilevel.fit(F, d, weights="w", reml=False)
    assert ml.deviance == pytest.approx(1742.0409718836, rel=1e-9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match="non-negative"):
            multilevel.fit(F, d.assign(w=-d.w), weights="w")


@pytest.mark.parametrize("scale", [1e-200, 1e200])
def test_response_too_small_or_large_to_square_is_named(scale):
    import multilevel
    from multilevel.errors import DataError

    d = pd.DataFrame({"x": np.linspace(-1, 1, 24), "g": np.repeat(np.arange(6), 4)})
    d["y"] = scale * np.resize([0.0, 1.0, 3.0], 24)
    with pytest.raises(DataError, match="rescale it"):
        multilevel.fit("y ~ x + (1 | g)", d)


def test_warnings_point_at_the_callers_line():
    d = multilevel.load_dataset("sleepstudy").copy()
    d.loc[0, "Days"] = np.nan
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        multilevel.fit("Reaction ~ Days + (1 | Subject)", d)
    assert [w.filename for w in caught if w.category is MissingDataWarning] == [__file__]


@pytest.mark.parametrize("factor", [1e300, 1e-300, 1e100, 1e-100])
def test_rank_check_reads_directions_not_magnitudes(factor):
    from multilevel.model.design import _drop_rank_deficient

    rng = np.random.default_rng(0)
    X = np.column_stack([np.ones(30), rng.normal(size=30), rng.normal(size=30) * factor])
    with warnings.catch_warnings():
        warnings.simplefilter("error", RankDeficiencyWarning)
        kept, names, dropped = _drop_rank_deficient(X, ["Intercept", "a", "big"])
    assert names == ["Intercept", "a", "big"] and dropped == [] and np.array_equal(kept, X)
    collinear = np.column_stack([X, factor * (X[:, 0] + 2 * X[:, 1])])
    with pytest.warns(RankDeficiencyWarning, match="dropping 1 column c"):
        _, names, _ = _drop_rank_deficient(collinear, ["Intercept", "a", "big", "c"])
    assert names == ["Intercept", "a", "big"]


@pytest.mark.parametrize("factor", [1e100, 1e-100])
def test_a_rescaled_predictor_is_kept_and_its_coefficient_rescaled(sleep, factor):
    ref = multilevel.fit("Reaction ~ Days + (1 | Subject)", sleep)
    m = multilevel.fit("Reaction ~ Days + (1 | Subject)", sleep.assign(Days=sleep.Days * factor))
    assert m.converged and list(m.fixef.index) == ["Intercept", "Days"]
    assert m.fixef["Days"] * factor == pytest.approx(ref.fixef["Days"], rel=1e-5)
    assert m.fixef_se.iloc[1] * factor == pytest.approx(ref.fixef_se.iloc[1], rel=1e-4)


@pytest.mark.parametrize("factor", [1e300, 1e-300])
@pytest.mark.parametrize("column", ["Reaction", "Days"])
def test_values_that_cannot_be_squared_are_a_scale_error(sleep, factor, column):
    with pytest.raises(DataError, match=r"too small or too large to square .* rescale it"):
        multilevel.fit("Reaction ~ Days + (1 | Subject)", sleep.assign(**{column: sleep[column] * factor}))


def test_a_column_name_held_twice_is_refused(sleep):
    twice = pd.concat([sleep, 2 * sleep[["Days"]]], axis=1)
    for call in (
        lambda: multilevel.fit("Reaction ~ Days + (1 | Subject)", twice),
        lambda: multilevel.gee("Reaction ~ Days", twice, groups="Subject"),
    ):
        with pytest.raises(DataError, match="more than one column named 'Days'"):
            call()
    # a duplicate the model does not read is no concern
    assert multilevel.fit("Reaction ~ 1 + (1 | Subject)", twice).nobs == 180
