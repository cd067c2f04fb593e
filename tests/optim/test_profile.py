"""Zeta traces and their crossings on profiles known in closed form."""

import math

import numpy as np
import pytest

from multilevel.optim.profile import ZetaTrace


class Known:
    """One parameter ``v`` with deviance ``g(v)`` (the other parameter already optimal)."""

    def __init__(self, g, estimate, lower=-np.inf, upper=np.inf, step=0.5):
        self.g, self._step = g, step
        self.names = ("v", "w")
        self.estimate = np.array([estimate, 0.0])
        self.lower, self.upper = np.array([lower, -np.inf]), np.array([upper, np.inf])
        self.base = g(estimate)
        self.calls = 0

    def start(self, i):
        return np.zeros(1)

    def step(self, i):
        return self._step

    def minimize(self, i, value, start):
        self.calls += 1
        return self.g(value), np.zeros(1)

    def point(self, i, value, rest):
        return np.array([value, 0.0])


def test_quadratic_crossings_are_exact():
    prof = Known(lambda v: (v - 1.0) ** 2 / 0.25, 1.0)
    tr = ZetaTrace(prof, 0)
    z = 1.959963984540054
    assert tr.crossing(1, z) == pytest.approx(1 + 0.5 * z, abs=1e-9)
    assert tr.crossing(-1, z) == pytest.approx(1 - 0.5 * z, abs=1e-9)
    assert prof.calls <= 8  # a straight zeta: the secant step lands on the root


def test_skewed_profile_crossing_sits_on_the_level():
    # a log-scale parameter: deviance quadratic in log v
    # (no finite deviance at the bound 0, as a profiler reports it: inf)
    prof = Known(lambda v: 8.0 * math.log(v / 2.0) ** 2 if v > 0 else math.inf, 2.0, lower=0.0, step=0.3)
    tr = ZetaTrace(prof, 0)
    for d in (-1, 1):
        v = tr.crossing(d, 1.96)
        assert abs(tr.zeta(v) - d * 1.96) < 1e-8
        assert v == pytest.approx(2.0 * math.exp(d * 1.96 / math.sqrt(8.0)), rel=1e-8)


def test_bound_is_the_limit_when_the_profile_stops_short():
    # deviance rises by only 1 between the estimate and the bound at 0
    prof = Known(lambda v: (v - 1.0) ** 2, 1.0, lower=0.0)
    tr = ZetaTrace(prof, 0)
    assert tr.crossing(-1, 1.96) == 0.0
    assert tr.crossing(1, 1.96) == pytest.approx(2.96, abs=1e-8)


def test_estimate_on_the_bound():
    prof = Known(lambda v: v**2, 0.0, lower=0.0)
    assert ZetaTrace(prof, 0).crossing(-1, 1.96) == 0.0


def test_flat_profile_is_open_with_a_warning():
    prof = Known(lambda v: min((v - 1.0) ** 2, 1.0), 1.0)
    tr = ZetaTrace(prof, 0)
    with pytest.warns(RuntimeWarning, match="does not reach"):
        assert math.isnan(tr.crossing(1, 1.96))


def test_fill_reaches_the_cutoff_with_even_points():
    prof = Known(lambda v: (v - 1.0) ** 2 / 0.25, 1.0)
    tr = ZetaTrace(prof, 0)
    grid = tr.fill(3.0, 4)
    assert len(grid) == 9
    vals, zs, full = tr.table(grid)
    assert zs[0] == pytest.approx(-3.0, abs=1e-8) and zs[-1] == pytest.approx(3.0, abs=1e-8)
    assert np.allclose(np.diff(vals), np.diff(vals)[0])
    assert full.shape == (9, 2)


def test_warm_starts_come_from_inside():
    """A point is started from the points between it and the estimate (the nearest, or
    the line through the nearest two), never from one further out (which may sit in
    another optimum of the inner problem)."""
    starts = []

    class Recording(Known):
        def minimize(self, i, value, start):
            starts.append((value, float(start[0])))
            return self.g(value), np.array([value])

    prof = Recording(lambda v: v**2, 0.0)
    tr = ZetaTrace(prof, 0)
    tr.zeta(3.0)
    tr.zeta(1.0)
    assert starts[-1] == (1.0, 0.0)  # from the estimate, not from 3.0
    tr.zeta(2.0)
    assert starts[-1] == (2.0, 2.0)  # extrapolated along 0 -> 0 and 1 -> 1, not from 3


@pytest.mark.parametrize(
    "f, a, b",
    [
        (lambda x: x**3 - 2 * x - 5, 2.0, 3.0),
        (lambda x: math.exp(x) - 10.0, 0.0, 5.0),
        (lambda x: math.tanh(50 * (x - 0.3)), -1.0, 1.0),
        (lambda x: (x - 1e-3) ** 3, -1.0, 1.0),  # flat at its root
        (lambda x: math.log(x) + 0.5, 1e-3, 10.0),
    ],
)
def test_brent_agrees_with_scipy(f, a, b):
    from scipy.optimize import brentq

    from multilevel.optim.profile import brent

    calls = []

    def g(x):
        calls.append(x)
        return f(x)

    ours = brent(g, a, b, xtol=1e-13)
    assert ours == pytest.approx(brentq(f, a, b, xtol=1e-13, maxiter=1000), abs=1e-9)
    assert len(calls) < 200
    with pytest.raises(ValueError, match="opposite signs"):
        brent(f, b, b + 1.0, xtol=1e-9)
