"""Property-based failure paths of the many-fit entry points: any responses, any
replicate counts and statistics give a result or a ModelError, never a crash, and
nothing is silently wrong (every response gets rows; failures are flagged)."""

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import multilevel
from multilevel.errors import ModelError

D = pd.DataFrame({"x": np.linspace(-1, 1, 24), "g": pd.Categorical(np.repeat(np.arange(6), 4))})
VALUES = st.one_of(
    st.floats(-1e3, 1e3, allow_nan=False),
    st.just(np.nan),
    st.just(np.inf),
    st.just(0.0),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    k=st.integers(1, 4),
    fill=st.lists(VALUES, min_size=1, max_size=24 * 4),
    constant=st.booleans(),
)
def test_fit_many_any_responses(k, fill, constant):
    Y = np.resize(np.asarray(fill, dtype=float), (24, k))
    if constant:
        Y[:, 0] = 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            t = multilevel.fit_many("y ~ x + (1 | g)", D, Y)
        except ModelError as e:
            assert str(e)
            return
    assert sorted(t.response.unique()) == sorted(f"y{i + 1}" for i in range(k))
    flagged = t.groupby("response")["converged"].first()
    crit = t.groupby("response")["criterion"].first()
    # a converged fit has a finite criterion; a failed one is flagged, not hidden
    assert np.all(np.isfinite(crit[flagged])), t


@settings(max_examples=25, deadline=None)
@given(n=st.one_of(st.integers(-3, 30), st.floats(-2, 5), st.text(max_size=3), st.none()))
def test_bootstrap_any_n(n):
    m = _fit()
    try:
        b = multilevel.bootstrap(m, n, seed=1)
    except ModelError as e:
        assert "positive integer" in str(e)
        return
    assert b.n == n and b.replicates.shape == (n, 4)


@settings(max_examples=25, deadline=None)
@given(
    out=st.one_of(
        st.lists(st.floats(allow_nan=True), min_size=0, max_size=3),
        st.just("text"),
        st.just([[1.0, 2.0]]),
        st.floats(),
    )
)
def test_bootstrap_any_statistic(out):
    m = _fit()
    try:
        b = multilevel.bootstrap(m, 3, lambda fit: out, seed=1)
    except (ModelError, ValueError, TypeError) as e:
        # a statistic that does not return numbers is the caller's error, named as such
        assert isinstance(e, ModelError) or "float" in str(e) or "convert" in str(e)
        return
    assert b.replicates.shape[0] == 3


_CACHE = {}


def _fit():
    if "m" not in _CACHE:
        _CACHE["m"] = multilevel.fit(
            "y ~ x + (1 | g)", D.assign(y=np.sin(np.arange(24.0)) + np.repeat(np.arange(6), 4))
        )
    return _CACHE["m"]


@pytest.mark.parametrize("test", ["PB", "pb", None, 3])
def test_anova_test_argument(test):
    m0 = multilevel.fit("y ~ 1 + (1 | g)", _fit().design.source)
    if test == "PB":
        a = multilevel.anova(m0, _fit(), test=test, n=20, seed=1)
        assert "Pr(PB)" in a.table
        return
    with pytest.raises(ModelError, match="test must be one of"):
        multilevel.anova(m0, _fit(), test=test)
