"""One blocked factor, two backends: the NumPy and JAX factors give the same criteria,
gradients (analytic against ``jax.grad``), solutions, vcov(beta) and conditional variances."""

import warnings

import numpy as np
import pandas as pd
import pytest

import multilevel
from multilevel.linalg import criteria, jax_backend, numpy_backend
from multilevel.linalg.crossprod import compute_crossprods
from multilevel.lmm.gradient import BOUNDARY_DELTA, criterion_and_gradient
from multilevel.lmm.objective import LmmObjective
from multilevel.lmm.solution import conditional_variances, solve, vcov_beta
from multilevel.model.design import build_model
from tests.lmm.test_reference import GAUSSIAN

jax_backend.enable_x64()

RTOL = 1e-10


_MODELS: dict = {}


def _model(ref):
    if ref["id"] not in _MODELS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _MODELS[ref["id"]] = multilevel.Model(ref["formula"], multilevel.load_dataset(ref["data"]))
    return _MODELS[ref["id"]]


def _thetas(spec, theta):
    """The reference optimum and an interior point (0.1 added to the template diagonals)."""
    diag = spec.theta_map.row == spec.theta_map.col
    theta = np.atleast_1d(np.asarray(theta, dtype=float))
    return {"optimum": theta, "interior": theta + 0.1 * diag}


def _assert_same_gradient(g_jax, g_np, value):
    # the gradient's terms are of the criterion's size and cancel at an optimum, so
    # its components are compared relative to the criterion as well as to themselves
    np.testing.assert_allclose(g_jax, g_np, rtol=RTOL, atol=RTOL * abs(value))


def _compare_objectives(spec, cp, theta, reml):
    on = LmmObjective(spec, cp, reml=reml)
    oj = LmmObjective(spec, cp, reml=reml, backend="jax")
    value, g_np = criterion_and_gradient(on, theta)
    assert oj(theta) == pytest.approx(value, rel=RTOL)
    # on the boundary the analytic gradient is taken just inside it; so is JAX's here
    tm = spec.theta_map
    inside = np.where((tm.row == tm.col) & (np.abs(theta) < BOUNDARY_DELTA), BOUNDARY_DELTA, theta)
    value_j, g_jax = oj.value_and_grad(inside)
    if np.array_equal(inside, theta):
        assert value_j == pytest.approx(value, rel=RTOL)
    _assert_same_gradient(g_jax, g_np, value)

    fn, fj = on.factor(theta), oj.factor(theta)
    sn, sj = solve(on, fn), solve(oj, fj)
    scale = max(np.max(np.abs(sn.beta)), 1e-300)
    np.testing.assert_allclose(sj.beta, sn.beta, rtol=1e-9, atol=1e-12 * scale)
    for bj, bn in zip(sj.b, sn.b):
        np.testing.assert_allclose(bj, bn, rtol=1e-9, atol=1e-9 * max(np.max(np.abs(bn)), 1e-8))
    assert sj.sigma == pytest.approx(sn.sigma, rel=RTOL)
    np.testing.assert_allclose(vcov_beta(oj, fj, sn.sigma), vcov_beta(on, fn, sn.sigma), rtol=1e-9)
    for cj, cn in zip(conditional_variances(oj, fj, sn.sigma), conditional_variances(on, fn, sn.sigma)):
        np.testing.assert_allclose(cj, cn, rtol=1e-9, atol=1e-12 * np.max(np.abs(cn)))


@pytest.mark.parametrize("point", ["optimum", "interior"])
@pytest.mark.parametrize("case", GAUSSIAN)
def test_backends_agree_on_the_reference_models(lme4_refs, case, point):
    """Every Gaussian reference fit, InstEval included (its dense ``A1R`` on JAX is
    2,972 x 1,159, 28 MB), by REML and by ML."""
    ref = lme4_refs[case]
    m = _model(ref)
    theta = _thetas(m.spec, ref["theta"])[point]
    for reml in (True, False):
        _compare_objectives(m.spec, m.crossprods, theta, reml)


def test_backends_agree_with_known_residual_errors():
    """``y | se(s)``: the residual scale is fixed at 1, the criterion is the deviance there."""
    spec, d = build_model("y | se(sigma) ~ 1 + (1 | school)", multilevel.load_dataset("eight_schools"))
    cp = compute_crossprods(d, [g.n_levels for g in spec.groupings])
    for theta in (np.array([4.0]), np.array([11.0])):
        for reml in (True, False):
            _compare_objectives(spec, cp, theta, reml)


def _random_frame(seed, n=120):
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "x": rng.normal(size=n),
            "z": rng.normal(size=n),
            "g0": rng.integers(0, 25, n).astype(str),
            "g1": rng.integers(0, 6, n).astype(str),
            "g2": rng.integers(0, 4, n).astype(str),
        }
    )
    df["y"] = df.x + rng.normal(size=25)[df.g0.astype(int)] + rng.normal(size=n)
    return df


@pytest.mark.parametrize(
    "formula",
    [
        "y ~ x + (1 | g0) + (1 + x | g1)",
        "y ~ x + z + (1 + x | g0) + (1 + x + z | g1) + (1 | g2)",
        "y ~ x + (1 + x + z | g0) + (x || g1)",
    ],
)
def test_backends_agree_with_vector_terms_in_the_dense_rest(formula):
    """The reference models have scalar terms only past the first block; here ``Lt``
    is not diagonal, so the Lambda products take their general path."""
    spec, d = build_model(formula, _random_frame(7))
    cp = compute_crossprods(d, [g.n_levels for g in spec.groupings])
    rng = np.random.default_rng(1)
    tm = spec.theta_map
    theta = np.where(tm.row == tm.col, rng.uniform(0.3, 1.5, tm.size), rng.normal(scale=0.4, size=tm.size))
    for reml in (True, False):
        _compare_objectives(spec, cp, theta, reml)


def test_bordered_factor_gives_the_residual_and_modes_at_any_beta():
    """``r2(beta)`` and ``u(beta)`` from the bordered factor equal the penalized least
    squares solved with beta held fixed, on both backends."""
    spec, d = build_model("y ~ x + z + (1 + x | g0) + (1 | g1)", _random_frame(3))
    cp = compute_crossprods(d, [g.n_levels for g in spec.groupings])
    Ts = spec.templates(np.array([0.8, 0.2, 0.5, 1.3]))
    beta = np.array([0.3, -1.0, 2.0])
    lay = cp.layout
    # the same system with y - X beta as the response and no fixed effects
    spec0, d0 = build_model("r ~ 0 + (1 + x | g0) + (1 | g1)", _random_frame(3).assign(r=d.y - d.X @ beta))
    cp0 = compute_crossprods(d0, [g.n_levels for g in spec0.groupings])
    for be in (numpy_backend, jax_backend):
        sys, sys0 = be.system(cp), be.system(cp0)
        f, f0 = be.factor(sys, Ts), be.factor(sys0, Ts)
        assert float(criteria.r2_at(f, beta, lay.mz, lay.p)) == pytest.approx(float(f0.r2), rel=1e-11)
        for ub, u0 in zip(be.solve(sys, f, beta).u, be.solve(sys0, f0).u):
            np.testing.assert_allclose(np.asarray(ub), np.asarray(u0), rtol=1e-9, atol=1e-12)
    # the JAX system at beta is that system, built from the cross-products with X
    sys_b = jax_backend.at_beta(jax_backend.system(cp), beta)
    sys0 = jax_backend.system(cp0)
    for a, b in ((sys_b.A11, sys0.A11), (sys_b.A1R, sys0.A1R), (sys_b.ARR, sys0.ARR)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-12, atol=1e-12)
    assert sys_b.layout == sys0.layout


def test_blas_threads_follow_the_idle_cores(monkeypatch):
    from threadpoolctl import threadpool_info

    from multilevel.linalg import threads

    free = threads.idle_cores()
    assert free is None or free >= 1
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    if not blas:
        return
    # busy cores: a large block gets one thread; a small block always does
    monkeypatch.setattr(threads, "idle_cores", lambda: 1)
    with threads.blas_threads(threads.SMALL_DENSE):
        assert all(i["num_threads"] == 1 for i in threadpool_info() if i["user_api"] == "blas")
    with threads.blas_threads(10):
        assert all(i["num_threads"] == 1 for i in threadpool_info() if i["user_api"] == "blas")
    before = [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
    with threads.blas_threads(10, tiny_as_is=True):  # one tiny fit: BLAS left as it is
        assert [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"] == before
