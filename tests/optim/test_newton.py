"""The batched bound-constrained Newton minimizer."""

import numpy as np
import pytest

from multilevel.optim.newton import minimize, stencil


def test_bounded_quadratics_all_at_once():
    c = np.array([[1.0, -2.0], [-0.5, 3.0], [2.0, 2.0]])

    def f(x, which):
        return np.sum((x - c[which]) ** 2 * [1.0, 10.0], axis=1) + x[:, 0] * x[:, 1] * 0.1

    res = minimize(f, np.ones((3, 2)), np.array([0.0, 0.0]))
    assert res.converged.all()
    assert res.x[0, 1] == 0.0 and res.x[1, 0] == 0.0  # held on the bound
    free = res.x[2]
    g = 2 * (free - c[2]) * [1.0, 10.0] + 0.1 * free[::-1]
    assert np.abs(g).max() < 1e-6


def test_leaves_a_bound_along_negative_curvature():
    # f = x^4 - x^2 is flat at the bound x = 0 (a maximum): the minimizer must not stop there
    res = minimize(lambda x, w: x[:, 0] ** 4 - x[:, 0] ** 2, np.zeros((1, 1)), np.array([0.0]))
    assert res.converged[0]
    assert res.x[0, 0] == pytest.approx(1 / np.sqrt(2), rel=1e-6)


def test_rosenbrock_from_many_starts():
    def f(x, w):
        return 100 * (x[:, 1] - x[:, 0] ** 2) ** 2 + (1 - x[:, 0]) ** 2

    starts = np.random.default_rng(0).uniform(-1.5, 1.5, (20, 2))
    res = minimize(f, starts, np.full(2, -np.inf), max_iter=200, tol=1e-20)
    assert res.converged.all()
    np.testing.assert_allclose(res.x, 1.0, atol=1e-7)


def test_undefined_regions_are_avoided():
    def f(x, w):
        v = (x[:, 0] - 3.0) ** 2
        return np.where(x[:, 0] > 2.0, np.inf, v)

    res = minimize(f, np.zeros((1, 1)), np.array([-np.inf]))
    assert res.x[0, 0] <= 2.0 and np.isfinite(res.fval[0])


def test_central_stencil_has_four_points_per_pair():
    pts, pairs = stencil(np.zeros((2, 3)), np.full((2, 3), 0.1), central=True)
    assert pairs == [(0, 1), (0, 2), (1, 2)] and pts.shape == (2, 6 + 12, 3)


def test_bobyqa_refuses_a_non_finite_start_as_a_numerical_failure():
    # NLopt would raise its own invalid_argument; the fits turn a FloatingPointError
    # into a ModelError naming the fit (found by the robustness fuzzer: a GLMM stage-2
    # start whose step came from a non-finite factor)
    from multilevel.model.verdict import is_numerical_failure
    from multilevel.optim.optimize import bobyqa

    for x0, step in (([np.nan, 1.0], None), ([1.0, 1.0], [np.nan, 0.1])):
        with pytest.raises(FloatingPointError) as info:
            bobyqa(lambda x: float(x @ x), np.array(x0), np.array([-np.inf, -np.inf]), initial_step=step)
        assert is_numerical_failure(info.value)
