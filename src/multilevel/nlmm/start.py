"""Starting values of a nonlinear mixed model: fixed effects from ``start=`` or the
self-starting model, refined by nonlinear least squares of the population model
(random effects at zero), as R's ``getInitial`` followed by ``nls``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from ..errors import ModelError
from ..formula.expression import Name, evaluate, names_of
from ..formula.selfstart import SELF_START
from ..model.nonlinear import NlmmProblem


def selfstart_values(problem: NlmmProblem) -> dict[str, float]:
    """The self-starting model's initial values, by parameter name ({} without one)."""
    call = problem.mean.selfstart
    if call is None:
        return {}
    model = SELF_START[call.model]
    covariates: dict[str, np.ndarray] = {}
    for role, arg in zip(model.args, call.args):
        if role in model.params:
            continue
        if any(nm in problem.param_names for nm in names_of(arg)):
            return {}  # an input that depends on parameters has no automatic start
        covariates[role] = np.broadcast_to(
            np.asarray(evaluate(arg, problem.covariates, np), float), problem.y.shape
        )
    init = model.initial(covariates, problem.y)
    return {
        arg.name: float(init[role])
        for role, arg in zip(model.args, call.args)
        if role in model.params and isinstance(arg, Name)
    }


def _coefficients(problem: NlmmProblem, k: int, value: Any) -> np.ndarray:
    """One parameter's fixed-effect start: a number (the intercept; every level of a
    model without intercept) or one value per coefficient."""
    sl = problem.beta_slices[k]
    names = problem.specs[k].fixed_names
    try:
        arr = np.atleast_1d(np.asarray(value, dtype=float))
    except (TypeError, ValueError):
        name = problem.param_names[k]
        raise ModelError(f"start[{name!r}] must be a number or numbers, got {value!r}") from None
    if not np.all(np.isfinite(arr)):
        raise ModelError(f"start[{problem.param_names[k]!r}] must be finite, got {value!r}")
    if arr.size == sl.stop - sl.start:
        return arr
    if arr.size != 1:
        raise ModelError(
            f"start[{problem.param_names[k]!r}] has {arr.size} values; give one number or one per "
            f"coefficient ({', '.join(names)})"
        )
    if "Intercept" in names:
        out = np.zeros(len(names))
        out[names.index("Intercept")] = arr[0]
        return out
    return np.full(len(names), arr[0])


def initial_beta(problem: NlmmProblem, start: Mapping[str, Any] | None) -> np.ndarray:
    """The fixed-effect start from ``start=`` and the self-starting model."""
    given = dict(start or {})
    unknown = [k for k in given if k not in problem.param_names]
    if unknown:
        raise ModelError(
            f"start= names {', '.join(map(repr, unknown))}, which are not parameters; the parameters "
            f"are {', '.join(problem.param_names)}"
        )
    missing = [k for k in problem.param_names if k not in given]
    if missing:
        auto = selfstart_values(problem)
        if any(k not in auto for k in missing):
            lack = [k for k in missing if k not in auto]
            raise ModelError(
                f"no start for {', '.join(map(repr, lack))}: give start={{{lack[0]!r}: value, ...}} or use "
                "a self-starting model (SSlogis, SSasymp, SSmicmen, SSfol, SSbiexp)"
            )
        given.update({k: auto[k] for k in missing})
    beta = np.concatenate([_coefficients(problem, k, given[nm]) for k, nm in enumerate(problem.param_names)])
    if not np.all(np.isfinite(beta)):
        raise ModelError(f"the start {dict(zip(problem.beta_names, beta))} is not finite; give start=")
    return beta


def population_start(problem: NlmmProblem, beta0: np.ndarray) -> tuple[np.ndarray, float]:
    """Nonlinear least squares of the population model from ``beta0``: (beta, residual SD).

    Falls back to ``beta0`` where the least-squares fit fails or is worse.
    """
    from scipy.optimize import least_squares

    def resid(beta: np.ndarray) -> np.ndarray:
        with np.errstate(all="ignore"):
            r = problem.y - problem.mean_numpy(problem.phi(beta))
        return np.where(np.isfinite(r), r, 1e150)

    r0 = resid(beta0)
    rss0 = float(r0 @ r0)
    try:
        sol = least_squares(resid, beta0, method="lm", xtol=1e-10, ftol=1e-10)
        beta, rss = sol.x, float(sol.fun @ sol.fun)
    except (ValueError, np.linalg.LinAlgError):
        beta, rss = beta0, rss0
    if not (math.isfinite(rss) and rss <= rss0):
        beta, rss = beta0, rss0
    if not (math.isfinite(rss) and rss < 1e300):
        raise ModelError("the mean is not finite at the start; give start= closer to the data")
    return beta, math.sqrt(rss / problem.n)
