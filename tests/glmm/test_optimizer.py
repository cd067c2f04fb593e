"""The GLMM optimizer on hard cases: several boundary optima, an infeasible start,
and families whose conditional mode need not be unique."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import multilevel
from multilevel.glmm.families import get_family

DATA = Path(__file__).resolve().parents[1] / "data"


def test_vector_term_with_two_boundary_optima_keeps_the_lower():
    # simulated binary data with a random slope: the Laplace deviance has a boundary
    # optimum with the intercept variance at 0 (254.9789) and a lower one with the
    # slope perfectly correlated (254.8678, what lme4's thorough stage 1 reaches)
    df = pd.read_csv(DATA / "glmm_two_boundary_optima.csv", dtype={"g": str})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = multilevel.fit("y ~ x + (1 + x | g)", df, family="binomial")
    assert m.deviance < 254.86779
    assert m.singular


def test_start_outside_the_support_falls_back_to_bobyqa():
    # Gamma with the inverse link on data simulated with a log link: stage 1 never
    # finds positive means everywhere, so stage 2 starts where the deviance is
    # infinite and the gradient path cannot move; BOBYQA still reaches the optimum
    df = pd.read_csv(DATA / "glmm_gamma_inverse_infeasible_start.csv", dtype={"g": str})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = multilevel.fit("y ~ x + (1 | g)", df, family="Gamma", link="inverse")
    assert np.isfinite(m.deviance)
    assert m.deviance < 416.9477
    assert "BOBYQA" in m.estimate.stage2.optimizer


def test_which_families_take_the_gradient_path():
    assert get_family("binomial").log_concave
    assert get_family("binomial", "probit").log_concave
    assert get_family("negative_binomial").log_concave
    assert get_family("Gamma", "log").log_concave
    assert not get_family("poisson", "sqrt").log_concave  # symmetric in eta: two modes
    assert not get_family("Gamma", "identity").log_concave
    assert not get_family("inverse_gaussian", "log").log_concave
