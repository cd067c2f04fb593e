"""The analytic gradient of the profiled criterion against finite differences."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

import multilevel
from multilevel.lmm.gradient import criterion_and_gradient

REFS = json.loads((Path(__file__).parents[1] / "data" / "lme4_fits.json").read_text())
CASES = [k for k, v in REFS.items() if v["family"] == "gaussian" and v["nobs"] < 5000]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("reml", [True, False])
def test_gradient_matches_finite_differences(case, reml):
    ref = REFS[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obj = multilevel.Model(ref["formula"], multilevel.load_dataset(ref["data"])).objective(reml)
    rng = np.random.default_rng(0)
    theta = np.atleast_1d(np.asarray(ref["theta"], float)) + 0.1
    theta *= rng.uniform(0.8, 1.2, size=theta.size)
    _, g = criterion_and_gradient(obj, theta)
    h = 1e-6
    fd = np.array([(obj(theta + h * e) - obj(theta - h * e)) / (2 * h) for e in np.eye(theta.size)])
    np.testing.assert_allclose(g, fd, rtol=1e-4, atol=1e-4)


def test_gradient_on_boundary_is_zero_for_scalar_terms():
    obj = multilevel.Model("Yield ~ 1 + (1 | Batch)", multilevel.load_dataset("Dyestuff2")).objective()
    _, g = criterion_and_gradient(obj, np.array([0.0]))
    assert abs(g[0]) < 1e-4


@pytest.mark.parametrize("case", ["sleepstudy_reml", "penicillin_crossed", "radon_slope"])
def test_lbfgsb_reaches_the_same_optimum(case):
    ref = REFS[case]
    m = multilevel.fit(
        ref["formula"], multilevel.load_dataset(ref["data"]), reml=ref["REML"], optimizer="lbfgsb"
    )
    assert m.reml_criterion == pytest.approx(ref["REMLcrit"], rel=1e-9)
    assert m.converged
