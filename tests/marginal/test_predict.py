"""GEE predict() on new data: row order, offsets, fitted levels, missing values."""

import numpy as np
import pandas as pd
import pytest

import multilevel
from multilevel.errors import DataError

CBPP = "cbind(incidence, size - incidence) ~ period"


@pytest.fixture(scope="module")
def cbpp():
    d = multilevel.load_dataset("cbpp")
    return d.assign(lsize=np.log(d["size"]))


@pytest.fixture(scope="module")
def cbpp_gee(cbpp):
    return multilevel.gee(CBPP, cbpp, groups="herd", family="binomial")


def test_predict_keeps_the_data_order():
    d = multilevel.load_dataset("dietox").sample(frac=1.0, random_state=1)  # clusters interleaved
    m = multilevel.gee("Weight ~ Time + Cu", d, groups="Pig", corstr="exchangeable")
    np.testing.assert_allclose(m.predict(d), m.predict(), rtol=1e-12)
    X = np.column_stack([np.ones(len(d)), d.Time, d.Cu == "Cu035", d.Cu == "Cu175"]).astype(float)
    np.testing.assert_allclose(m.predict(), X @ m.coef.to_numpy(), rtol=1e-12)


@pytest.mark.parametrize(
    "formula, kwargs",
    [("incidence ~ period", {"offset": "lsize"}), ("incidence ~ period + offset(log(size))", {})],
)
def test_predict_includes_the_offset(cbpp, formula, kwargs):
    m = multilevel.gee(formula, cbpp, groups="herd", family="poisson", **kwargs)
    np.testing.assert_allclose(m.predict(cbpp), m.predict(), rtol=1e-12)
    eta = m.predict(cbpp, type="link")
    np.testing.assert_allclose(eta - m.predict(cbpp.assign(size=1, lsize=0.0), type="link"), cbpp.lsize)
    # the fitted means are the estimator's (its rows sorted by cluster)
    order = np.argsort(cbpp.herd.cat.codes.to_numpy(), kind="stable")
    np.testing.assert_allclose(m.predict()[order], m.estimate.mu, rtol=1e-12)


def test_offset_array_needs_offset_for_new_data(cbpp):
    m = multilevel.gee(
        "incidence ~ period", cbpp, groups="herd", family="poisson", offset=cbpp.lsize.to_numpy()
    )
    with pytest.raises(DataError, match="offset= as an array"):
        m.predict(cbpp)
    np.testing.assert_allclose(m.predict(cbpp, offset=cbpp.lsize.to_numpy()), m.predict(), rtol=1e-12)


def test_new_data_encoded_by_the_fitted_levels(cbpp_gee):
    by_name = cbpp_gee.predict(pd.DataFrame({"period": ["1", "2", "3", "4"]}), type="link")
    beta = cbpp_gee.coef.to_numpy()
    np.testing.assert_allclose(by_name, beta[0] + np.r_[0.0, beta[1:]], rtol=1e-12)
    ints = pd.DataFrame({"period": [1, 2, 3, 4]})  # no cluster column needed
    np.testing.assert_allclose(cbpp_gee.predict(ints, type="link"), by_name, rtol=1e-12)
    pl = pytest.importorskip("polars")
    pa = pytest.importorskip("pyarrow")
    np.testing.assert_allclose(cbpp_gee.predict(pl.from_pandas(ints), type="link"), by_name, rtol=1e-12)
    np.testing.assert_allclose(cbpp_gee.predict(pa.Table.from_pandas(ints), type="link"), by_name, rtol=1e-12)
    with pytest.raises(DataError, match=r"column 'period' has level '5'.*'1', '2', '3', '4'"):
        cbpp_gee.predict(pd.DataFrame({"period": [5]}))
    with pytest.raises(DataError, match="'period'"):
        cbpp_gee.predict(pd.DataFrame({"herd": ["1"]}))


def test_rows_with_missing_values_predict_nan(cbpp_gee):
    got = cbpp_gee.predict(pd.DataFrame({"period": [1, None, 3]}))
    assert np.isnan(got[1])
    np.testing.assert_allclose(got[[0, 2]], cbpp_gee.predict(pd.DataFrame({"period": [1, 3]})), rtol=1e-12)


def test_gee_reports_dropped_rows(cbpp):
    d = cbpp.copy()
    d.loc[[2, 7], "incidence"] = np.nan
    with pytest.warns(Warning, match="dropped 2 of 56 rows"):
        m = multilevel.gee(CBPP, d, groups="herd", family="binomial")
    assert m.n_missing == 2 and m.nobs == 54 and m.predict().shape == (54,)
    assert "2 rows with missing values were dropped" in m.summary()
