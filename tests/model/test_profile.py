"""The model-independent parts of profiles: the record, intervals and argument checks."""

import numpy as np
import pytest

from multilevel.errors import ConvergenceWarning, ModelError
from multilevel.model.profile import confint_table, profile_model, resolve_parm


class Parabola:
    """deviance (v - c)^2 / s^2 in one parameter (the other optimal at 0)."""

    def __init__(self, estimate, center=None, scale=0.5):
        c = estimate if center is None else center
        self.g = lambda v: (v - c) ** 2 / scale**2
        self.names = ("sd_(Intercept)|g", "x")
        self.estimate = np.array([estimate, 0.0])
        self.lower, self.upper = np.array([0.0, -np.inf]), np.array([np.inf, np.inf])
        self.base = self.g(estimate)

    def start(self, i):
        return np.zeros(1)

    def step(self, i):
        return 0.5

    def minimize(self, i, value, start):
        return (self.g(value) if i == 0 else self.base + value**2), np.zeros(1)

    def point(self, i, value, rest):
        return np.array([value, 0.0]) if i == 0 else np.array([self.estimate[0], value])


def test_intervals_and_record():
    prof = Parabola(2.0)
    ci = confint_table(prof, 1, None, 0.95)
    z = 1.959963984540054
    assert ci.loc["sd_(Intercept)|g"].tolist() == pytest.approx([2 - 0.5 * z, 2 + 0.5 * z], abs=1e-8)
    assert ci.loc["x"].tolist() == pytest.approx([-z, z], abs=1e-8)
    pr = profile_model(prof, 1, "x", points=2)
    assert pr.names == ("x",) and len(pr.table) == 5
    assert pr.confint(0.9).loc["x", "upper"] == pytest.approx(1.644854, abs=1e-6)


def test_a_lower_deviance_than_the_fits_is_reported():
    with pytest.warns(ConvergenceWarning, match="below the fit's"):
        confint_table(Parabola(2.0, center=3.0), 1, "sd_(Intercept)|g", 0.95)


def test_parm_forms():
    names = ("sd_(Intercept)|g", "sigma", "Intercept", "x")
    assert resolve_parm(None, names, 2) == [0, 1, 2, 3]
    assert resolve_parm("theta_", names, 2) == [0, 1]
    assert resolve_parm(["x", 0, "x"], names, 2) == [3, 0]
    with pytest.raises(ModelError, match="did you mean 'sigma'"):
        resolve_parm("Sigma", names, 2)
