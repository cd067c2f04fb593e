"""The NPMLE against the high-precision conic-solver references in tests/data/deconv/."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from multilevel.deconv import NpmleResult, npmle, npmle_em

DATA = Path(__file__).resolve().parent.parent / "data" / "deconv"
PROBLEMS = ["gauss_a_n1000", "gauss_b_n1000", "poisson_d_n50000"]
GRIDS = ["300", "1000"]
CASES = [(p, m) for p in PROBLEMS for m in GRIDS]


@cache
def reference(problem: str) -> tuple[dict, np.ndarray]:
    ref = json.loads((DATA / f"npmle_{problem}.json").read_text())
    y = pd.read_csv(DATA / ref["data_file"]).iloc[:, 0].to_numpy(float)
    return ref, y


@cache
def fitted(problem: str, m: str) -> NpmleResult:
    ref, y = reference(problem)
    return npmle(y, family=ref["family"], grid=int(m))


@pytest.mark.parametrize(("problem", "m"), CASES)
def test_grid_is_the_reference_grid(problem, m):
    ref, _ = reference(problem)
    np.testing.assert_allclose(fitted(problem, m).grid, ref["grids"][m]["grid"], rtol=0, atol=1e-12)


@pytest.mark.parametrize(("problem", "m"), CASES)
def test_loglik_reaches_the_reference(problem, m):
    ref = reference(problem)[0]["grids"][m]
    fit = fitted(problem, m)
    assert fit.converged
    assert fit.loglik >= ref["logLik"] - 1e-6 * abs(ref["logLik"])
    # above the reference by more than its certified gap would mean another grid or a bug
    assert fit.loglik <= ref["logLik"] + ref["gap_bound"] + 1e-9 * abs(ref["logLik"])


@pytest.mark.parametrize(("problem", "m"), CASES)
def test_certificate(problem, m):
    fit = fitted(problem, m)
    assert 1 - 1e-9 <= fit.kkt_max <= 1 + 1e-6
    assert fit.gap_bound == pytest.approx(fit.n * (fit.kkt_max - 1), abs=1e-12)
    assert fit.weights.sum() == pytest.approx(1.0, abs=1e-12)
    assert np.all(fit.weights >= 0) and np.count_nonzero(fit.weights) == fit.support.shape[0]


@pytest.mark.parametrize(("problem", "m"), CASES)
def test_marginal_and_posterior_means_match(problem, m):
    ref = reference(problem)[0]["grids"][m]
    fit = fitted(problem, m)
    np.testing.assert_allclose(fit.log_marginal()[:200], ref["log_fhat_first200"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(fit.posterior_mean()[:200], ref["posterior_mean_first200"], rtol=0, atol=1e-4)


@pytest.mark.parametrize(("problem", "m"), CASES)
def test_em_after_1000_iterations_matches(problem, m):
    ref, y = reference(problem)
    em = npmle_em(y, family=ref["family"], grid=int(m), iterations=1000)
    target = ref["grids"][m]["em"]["1000"]["logLik"]
    assert em.loglik == pytest.approx(target, rel=1e-8)
    assert em.method == "em" and not em.converged
    assert em.loglik < fitted(problem, m).loglik


def test_poisson_rows_are_merged_exactly():
    ref, _ = reference("poisson_d_n50000")
    fit = fitted("poisson_d_n50000", "300")
    assert fit.rows == ref["rows_in_solve"] and fit.n == ref["n"] and not fit.binned
