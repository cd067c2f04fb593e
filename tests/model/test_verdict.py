"""The one convergence verdict: a result with a non-finite number is never converged."""

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from multilevel.errors import ConvergenceWarning, ModelError
from multilevel.model.verdict import finite_verdict, is_numerical_failure, numerical_failure
from multilevel.optim.optimize import OptSummary


@dataclass(frozen=True)
class _Fit:
    optinfo: OptSummary
    se: float
    messages: tuple[str, ...] = ()
    loglik: float = -1.0
    sigma: float = 1.0

    @property
    def theta(self):
        return np.ones(1)

    @property
    def _b(self):
        return [np.zeros(2)]

    @property
    def fixef(self):
        return pd.Series([0.5])

    @property
    def fixef_se(self):
        if np.isnan(self.se):
            raise np.linalg.LinAlgError("singular")
        return pd.Series([self.se])


def _opt(converged=True):
    return OptSummary("x", (1.0,), (1.0,), 2.0, 3, 0.1, "NLOPT_SUCCESS", converged=converged)


def test_finite_fit_is_kept():
    fit = _Fit(_opt(), 0.1)
    assert finite_verdict(fit) is fit


@pytest.mark.parametrize("field", ["loglik", "sigma", "se", "se_raises"])
def test_non_finite_number_is_not_converged(field):
    kw = {"se": 0.1}
    if field == "se_raises":
        kw["se"] = np.nan  # fixef_se raises LinAlgError: counted as non-finite
    else:
        kw[field] = np.inf
    with pytest.warns(ConvergenceWarning, match="non-finite"):
        out = finite_verdict(_Fit(_opt(), **kw))
    assert not out.optinfo.converged and "non-finite" in out.messages[-1]


def test_standard_errors_can_be_left_out():
    fit = _Fit(_opt(), np.nan)
    assert finite_verdict(fit, standard_errors=False) is fit


def test_numerical_failures_are_recognized():
    assert is_numerical_failure(np.linalg.LinAlgError("x"))
    assert is_numerical_failure(ValueError("array must not contain infs or NaNs"))
    assert not is_numerical_failure(ValueError("a bug"))
    e = numerical_failure("the fit", ZeroDivisionError("float division by zero"), "try less")
    assert isinstance(e, ModelError) and "ZeroDivisionError" in str(e) and str(e).endswith("try less")
