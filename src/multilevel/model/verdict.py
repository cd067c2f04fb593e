"""The last word on convergence: a fit with a non-finite number is not converged.

Both likelihood paths (:func:`multilevel.lmm.fit.fit_objective` and
:func:`multilevel.glmm.driver.fit_glmm_result`) pass their result through
:func:`finite_verdict` before returning it, so ``converged=True`` always comes
with a finite criterion, estimates and standard errors. Numerical failures
inside a fit become one :class:`~multilevel.errors.ModelError` through
:func:`numerical_failure`.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np

from ..errors import ConvergenceWarning, ModelError, warn

#: exceptions that mean "the numbers broke down", not "the code is wrong"
NUMERICAL_FAILURES = (np.linalg.LinAlgError, FloatingPointError, ZeroDivisionError, OverflowError)


def is_numerical_failure(exc: BaseException) -> bool:
    """A linear-algebra or floating-point failure, or SciPy's refusal of non-finite input."""
    if isinstance(exc, NUMERICAL_FAILURES):
        return True
    return isinstance(exc, ValueError) and "infs or NaNs" in str(exc)


def numerical_failure(what: str, exc: BaseException, advice: str) -> ModelError:
    """The :class:`ModelError` for a fit whose arithmetic broke down (``raise ... from exc``)."""
    detail = " ".join(str(exc).split()) or type(exc).__name__
    return ModelError(f"{what} failed numerically ({type(exc).__name__}: {detail}); {advice}")


def _numbers(result: Any) -> dict[str, Any]:
    """The result's numbers by name: arrays, lists of arrays, or callables giving them."""
    if hasattr(result, "finite_numbers"):
        return result.finite_numbers()
    return {
        "log-likelihood": lambda: result.loglik,
        "fixed effects": lambda: result.fixef.to_numpy(),
        "variance parameters (theta)": lambda: result.theta,
        "residual scale": lambda: result.sigma,
        "random effects": lambda: [np.ravel(b) for b in result._b],
        "standard errors": lambda: result.fixef_se.to_numpy(),
    }


def _nonfinite(result: Any, standard_errors: bool) -> list[str]:
    values: dict[str, np.ndarray] = {}
    bad = []
    for name, get in _numbers(result).items():
        if name == "standard errors" and not standard_errors:
            continue
        try:
            value = get() if callable(get) else get
            if isinstance(value, (float, tuple)):  # Python numbers: no array needed
                if not all(map(math.isfinite, value if isinstance(value, tuple) else (value,))):
                    bad.append(name)
                continue
            if isinstance(value, list):
                value = np.concatenate(value) if value else np.zeros(0)
            values[name] = np.ravel(np.asarray(value, dtype=float))
        except Exception as exc:
            if not is_numerical_failure(exc):
                raise
            bad.append(name)
    if not values or np.isfinite(np.concatenate(list(values.values()))).all():  # the usual case
        return bad
    return bad + [name for name, v in values.items() if not np.isfinite(v).all()]


def finite_verdict(result: Any, *, standard_errors: bool = True) -> Any:
    """``result`` as is, or, when it claims convergence with a non-finite number,
    a copy with ``converged=False`` and a message (also warned) naming the numbers.

    ``standard_errors=False`` checks only the estimates (for bootstrap replicates,
    whose SEs are never used and cost a GLMM a Hessian).
    """
    if not result.optinfo.converged:
        return result
    bad = _nonfinite(result, standard_errors)
    if not bad:
        return result
    msg = (
        f"the optimum has non-finite {', '.join(bad)}: the fit is not converged. The model is "
        "likely too rich for the data (fewer random-effect terms or fixed effects), the predictors "
        "or response need rescaling, or the link needs to change (e.g. link='log')"
    )
    warn(msg, ConvergenceWarning)
    opt = dataclasses.replace(result.optinfo, converged=False, messages=(*result.optinfo.messages, msg))
    return dataclasses.replace(result, optinfo=opt, messages=(*result.messages, msg))
