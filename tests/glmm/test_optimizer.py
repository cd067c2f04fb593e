"""The GLMM optimizer on hard cases: several boundary optima, an infeasible start,
and families whose conditional mode need not be unique."""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import multilevel
from multilevel.family import get_family

DATA = Path(__file__).resolve().parents[1] / "data"


def _fresh_deviance(m) -> float:
    """The Laplace deviance at the fit's estimates, from PIRLS started afresh."""
    from multilevel.glmm.fit import deviance_function

    k, p = m.theta.size, m.spec.p
    x = np.concatenate([m.theta, m.estimate.beta])
    return deviance_function(m.problem, 1, k, p, False, None)(x)


def test_vector_term_with_two_boundary_optima_keeps_the_lower():
    # simulated binary data with a random slope. lme4 1.1-31 (glmer, defaults) stops
    # at a boundary optimum with the intercept variance at 0: deviance 254.9789,
    # theta (0, -0.1150, 0.0131). The Laplace deviance has a lower boundary optimum,
    # the slope perfectly correlated with the intercept, at 254.8678
    df = pd.read_csv(DATA / "glmm_two_boundary_optima.csv", dtype={"g": str})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = multilevel.fit("y ~ x + (1 + x | g)", df, family="binomial")
    assert m.deviance < 254.9789 - 0.1
    assert m.singular
    assert m.theta[0] > 0.05  # not lme4's optimum (intercept SD 0)
    # a genuine value of the Laplace deviance, not an artefact of warm starts
    assert abs(_fresh_deviance(m) - m.deviance) < 1e-6


def test_start_outside_the_support_falls_back_to_bobyqa(monkeypatch):
    # Gamma with the inverse link on data simulated with a log link. lme4 1.1-31 stops
    # with "PIRLS loop resulted in NaN value". Before PIRLS shrank a first step that
    # leaves the support, stage 1 never found positive means everywhere, so stage 2
    # started where the deviance is infinite and the gradient path could not move;
    # BOBYQA alone stopped at 416.9476, where random steps of 1e-3 found deviances 0.3
    # lower. Stage 2 is started outside the support here as it was then: BOBYQA to
    # reach the support and the gradient path from there end at a stationary point
    from multilevel.glmm import fit as glmm_fit

    stage1 = glmm_fit._stage1

    def outside(prob, theta0, **kw):
        s1, r1, d1 = stage1(prob, theta0, **kw)
        beta = r1.beta.copy()
        beta[0] -= r1.eta.min() + 0.01  # a linear predictor below 0: a negative mean
        return s1, dataclasses.replace(r1, beta=beta), d1

    df = pd.read_csv(DATA / "glmm_gamma_inverse_infeasible_start.csv", dtype={"g": str})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        direct = multilevel.fit("y ~ x + (1 | g)", df, family="Gamma", link="inverse")
        monkeypatch.setattr(glmm_fit, "_stage1", outside)
        m = multilevel.fit("y ~ x + (1 | g)", df, family="Gamma", link="inverse")
        assert m.estimate.stage2.optimizer.startswith("nlopt LN_BOBYQA, then L-BFGS-B")
        assert m.deviance < 416.9476 - 1.0
        assert m.deviance == pytest.approx(direct.deviance, abs=1e-6)
        from multilevel.glmm.fit import deviance_function, gradient_function

        x = np.concatenate([m.theta, m.estimate.beta, [np.log(m.estimate.disp)]])
        f = deviance_function(m.problem, 1, 1, 2, True, m.estimate.pirls.u)
        rng = np.random.default_rng(0)
        probes = [
            f(np.maximum(x + 1e-3 * rng.standard_normal(x.size), [0, -np.inf, -np.inf, -np.inf]))
            for _ in range(40)
        ]
        g = gradient_function(m.problem, 1, 2, True, m.estimate.pirls.u)(x)
    assert min(v for v in probes if np.isfinite(v)) > m.deviance - 1e-8
    assert float(g @ np.linalg.solve(m._hessian, g)) < 1e-8  # Newton decrement


@pytest.mark.parametrize("laplace", ["observed", "expected"])
def test_a_scalar_variance_stuck_at_zero_is_probed(monkeypatch, laplace):
    # negative binomial, 8 groups of 5: stage 1 ends at theta = 0, where the deviance
    # is even in theta and its gradient exactly 0, so the gradient path stays there,
    # though the deviance falls for theta > 0 (to 130.2566 at theta = 0.150; 25-node
    # quadrature, which BOBYQA fits, finds theta = 0.153)
    from multilevel.glmm import boundary
    from multilevel.glmm.fit import deviance_function

    df = pd.read_csv(DATA / "glmm_scalar_theta_zero.csv")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        monkeypatch.setattr(boundary, "PROBE_THETAS", ())
        stuck = multilevel.fit("y ~ x + (1 | g)", df, family="negative_binomial", laplace=laplace)
        monkeypatch.undo()
        m = multilevel.fit("y ~ x + (1 | g)", df, family="negative_binomial", laplace=laplace)
        f = deviance_function(stuck.problem, 1, 1, 2, True, stuck.estimate.pirls.u)
        x = np.concatenate([stuck.theta, stuck.estimate.beta, [np.log(stuck.estimate.disp)]])
        above = f(x + np.array([0.03, 0, 0, 0]))
    assert stuck.theta[0] == 0.0 and stuck.singular
    assert above < stuck.deviance  # the likelihood rises above theta = 0
    assert not m.singular and m.theta[0] > 0.1
    assert m.deviance < stuck.deviance - 0.02
    assert "from above a variance at 0" in m.estimate.stage2.optimizer


def test_which_families_take_the_gradient_path():
    assert get_family("binomial").log_concave
    assert get_family("binomial", "probit").log_concave
    assert get_family("negative_binomial").log_concave
    assert get_family("Gamma", "log").log_concave
    assert not get_family("poisson", "sqrt").log_concave  # symmetric in eta: two modes
    assert not get_family("Gamma", "identity").log_concave
    assert not get_family("inverse_gaussian", "log").log_concave
