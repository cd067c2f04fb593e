"""The quasi-Newton minimizer with an exact gradient: optimum, bounds, failure paths."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multilevel.optim.quasi_newton import difference_hessian, minimize_gradient


def rosenbrock(x: np.ndarray) -> tuple[float, np.ndarray]:
    a, b = x
    f = 100.0 * (b - a * a) ** 2 + (1 - a) ** 2
    g = np.array([-400.0 * a * (b - a * a) - 2 * (1 - a), 200.0 * (b - a * a)])
    return float(f), g


def test_rosenbrock_from_the_classic_start():
    r = minimize_gradient(rosenbrock, np.array([-1.2, 1.0]), np.full(2, -np.inf))
    assert r.converged
    np.testing.assert_allclose(r.x, [1.0, 1.0], atol=1e-6)


def test_badly_scaled_quadratic_needs_few_gradients():
    """Scales 1e4 apart: the differenced Hessian makes the first step exact."""
    A = np.diag([1e-4, 1.0, 3.0])
    c = np.array([500.0, -2.0, 0.3])

    def fg(x: np.ndarray) -> tuple[float, np.ndarray]:
        e = x - c
        return float(e @ A @ e), 2 * A @ e

    r = minimize_gradient(fg, np.zeros(3), np.full(3, -np.inf))
    assert r.converged and r.evaluations <= 3 + 1 + 2
    np.testing.assert_allclose(r.x, c, rtol=1e-8)


def test_a_variable_held_at_its_bound():
    """The minimum is at x1 < 0: the bound x1 >= 0 holds it at 0, the other goes on."""

    def fg(x: np.ndarray) -> tuple[float, np.ndarray]:
        return float((x[0] - 1) ** 2 + (x[1] + 2) ** 2 + x[0] * x[1]), np.array(
            [2 * (x[0] - 1) + x[1], 2 * (x[1] + 2) + x[0]]
        )

    r = minimize_gradient(fg, np.array([0.0, 3.0]), np.array([-np.inf, 0.0]))
    assert r.converged
    np.testing.assert_allclose(r.x, [1.0, 0.0], atol=1e-8)
    assert r.grad[1] > 0


def test_undefined_region_is_backed_out_of():
    """-log(x) + x: inf for x <= 0; the first Newton step from 5 lands there."""

    def fg(x: np.ndarray) -> tuple[float, np.ndarray]:
        if x[0] <= 0:
            return math.inf, np.array([np.nan])
        return float(-10 * math.log(x[0]) + x[0] ** 2), np.array([-10 / x[0] + 2 * x[0]])

    r = minimize_gradient(fg, np.array([5.0]), np.array([-np.inf]))
    assert r.converged
    np.testing.assert_allclose(r.x, [math.sqrt(5.0)], rtol=1e-8)


def test_not_finite_at_the_start_is_not_converged():
    r = minimize_gradient(lambda x: (math.inf, np.full(1, np.nan)), np.zeros(1), np.array([-np.inf]))
    assert not r.converged and "start" in r.message


def test_the_evaluation_limit_is_reported():
    r = minimize_gradient(rosenbrock, np.array([-1.2, 1.0]), np.full(2, -np.inf), max_evals=5)
    assert not r.converged and "limit" in r.message


def test_difference_hessian_steps_back_where_forward_fails():
    def fg(x: np.ndarray) -> tuple[float, np.ndarray]:
        if x[0] > 1.0:
            return math.inf, np.array([np.nan])
        return float(x[0] ** 3), np.array([3 * x[0] ** 2])

    H = difference_hessian(fg, np.array([1.0]), np.array([3.0]), np.array([-np.inf]), 1e-6)
    assert H[0, 0] == pytest.approx(6.0, rel=1e-5)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(0.01, 100.0), min_size=1, max_size=4),
    st.lists(st.floats(-5.0, 5.0), min_size=4, max_size=4),
    st.lists(st.booleans(), min_size=4, max_size=4),
)
def test_convex_quadratics_with_bounds(scales, centre, bounded):
    """Any scaled convex quadratic: the answer is the centre clipped at the bounds
    (the Hessian is diagonal, so clipping coordinate-wise is the constrained optimum)."""
    k = len(scales)
    s, c = np.array(scales), np.array(centre[:k])
    lower = np.where(bounded[:k], 0.0, -np.inf)

    def fg(x: np.ndarray) -> tuple[float, np.ndarray]:
        return float(np.sum(s * (x - c) ** 2)), 2 * s * (x - c)

    r = minimize_gradient(fg, np.ones(k), lower)
    assert r.converged
    np.testing.assert_allclose(r.x, np.maximum(c, lower), atol=1e-6)


def test_an_indefinite_start_still_converges_fast():
    """Started where the curvature is negative (x = 0.3 on the double well): the
    differenced Hessian is indefinite, made positive definite before BFGS takes it over
    (a regression: skipped updates used to leave it indefinite, and the steps crawled)."""

    def fg(x: np.ndarray) -> tuple[float, np.ndarray]:
        e = x[1] - 0.5 * x[0]
        f = x[0] ** 4 - 2 * x[0] ** 2 + 3 * e**2
        return float(f), np.array([4 * x[0] ** 3 - 4 * x[0] - 3 * e, 6 * e])

    r = minimize_gradient(fg, np.array([0.3, 0.0]), np.full(2, -np.inf))
    assert r.converged and r.evaluations < 40
    assert abs(r.x[0]) == pytest.approx(1.0, abs=1e-6) and r.x[1] == pytest.approx(0.5 * r.x[0], abs=1e-6)
