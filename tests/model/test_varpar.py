"""SDs and correlations of the random effects <-> theta, with lme4's names."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import multilevel
from multilevel.model.design import build_model
from multilevel.model.varpar import VarParams, _psd_cholesky

SLEEP = multilevel.load_dataset("sleepstudy")


def _spec(formula, data=SLEEP):
    return build_model(formula, data)[0]


def test_names_follow_lme4():
    assert VarParams.of(_spec("Reaction ~ Days + (Days | Subject)")).names == (
        "sd_(Intercept)|Subject",
        "cor_Days.(Intercept)|Subject",
        "sd_Days|Subject",
    )
    assert VarParams.of(_spec("Reaction ~ Days + (Days || Subject)")).names == (
        "sd_(Intercept)|Subject",
        "sd_Days|Subject",
    )
    pastes = _spec("strength ~ 1 + (1 | batch/cask)", multilevel.load_dataset("Pastes"))
    assert VarParams.of(pastes).names == ("sd_(Intercept)|cask:batch", "sd_(Intercept)|batch")


def test_sleepstudy_estimates_match_varcorr():
    m = multilevel.fit("Reaction ~ Days + (Days | Subject)", SLEEP)
    v = VarParams.of(m.spec).from_theta(m.theta, m.sigma)
    assert v == pytest.approx(m.varcorr.sd_or_corr.to_numpy()[[0, 2, 1]], rel=1e-12)


def test_correlation_of_one_is_a_singular_factor():
    vp = VarParams.of(_spec("Reaction ~ Days + (Days | Subject)"))
    theta = vp.to_theta(np.array([2.0, 1.0, 3.0]), 1.0)
    assert theta == pytest.approx([2.0, 3.0, 0.0])
    assert vp.to_theta(np.array([2.0, 1.5, 3.0]), 1.0) is None  # |correlation| > 1


def test_psd_cholesky():
    R = np.array([[1.0, 1.0, 0.5], [1.0, 1.0, 0.5], [0.5, 0.5, 1.0]])
    L = _psd_cholesky(R)
    assert L is not None and np.allclose(L @ L.T, R)
    bad = np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]])  # indefinite
    assert _psd_cholesky(bad) is None


THREE = _spec("Reaction ~ Days + (Days + I(Days**2) | Subject)")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-3, 3), min_size=6, max_size=6),
    st.floats(0.1, 50.0),
)
def test_theta_round_trip_three_columns(values, scale):
    """theta -> (SDs, correlations) -> theta for a 3 x 3 term (positive diagonal)."""
    vp = VarParams.of(THREE)
    theta = np.array(values)
    diag = THREE.theta_map.row == THREE.theta_map.col
    theta[diag] = np.abs(theta[diag]) + 0.05
    v = vp.from_theta(theta, scale)
    assert np.all(v[~vp.is_sd] >= -1) and np.all(v[~vp.is_sd] <= 1)
    back = vp.to_theta(v, scale)
    assert back is not None
    assert back == pytest.approx(theta, rel=1e-8, abs=1e-9)
