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
from .jets import program


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
    """Nonlinear least squares of the population model from ``beta0`` (Levenberg-Marquardt,
    :mod:`multilevel.optim.least_squares`): (beta, residual SD).

    Falls back to ``beta0`` where the least-squares fit fails or is worse.
    """
    from ..optim.least_squares import levenberg_marquardt
    from .jets import mean_jet

    steps = program(problem.mean.tree)

    def resid_jac(beta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Residuals and d resid / d beta from the mean's first derivatives (the jets)."""
        with np.errstate(all="ignore"):
            jet = mean_jet(
                problem.mean.tree, problem.param_names, (problem.X @ beta).T, problem.covariates, steps=steps
            )
            jac = -np.einsum("nk,knp->np", jet.grad, problem.X)
        return problem.y - jet.value, np.where(np.isfinite(jac), jac, 0.0)

    r0 = resid_jac(beta0)[0]
    rss0 = float(r0 @ r0)
    sol = levenberg_marquardt(resid_jac, beta0, ftol=1e-10, xtol=1e-10)
    beta, rss = sol.x, sol.rss
    if not (math.isfinite(rss) and rss <= rss0):
        beta, rss = beta0, rss0
    if not (math.isfinite(rss) and rss < 1e300):
        raise ModelError("the mean is not finite at the start; give start= closer to the data")
    return beta, math.sqrt(rss / problem.n)


def theta_start(problem: NlmmProblem, beta: np.ndarray, sigma: float) -> np.ndarray:
    """Relative SDs of the random effects by moments at the population fit: per level,
    the least-squares effect ``z`` of the residuals on the mean's derivative in it; the
    variance of the ``z`` less their mean sampling variance is the effect's variance,
    relative to the residual SD left within levels (the population fit's ``sigma``
    still holds the effects' variance; the smallest over the terms is nearest to the
    model's). lme4 starts at 1; this start is where the optimizer would go, so it
    needs fewer steps."""
    from .jets import mean_jet

    theta = problem.theta_initial()
    if not (math.isfinite(sigma) and sigma > 0):
        return theta
    base = (problem.X @ beta).T
    moments = []
    with np.errstate(all="ignore"):
        jet = mean_jet(problem.mean.tree, problem.param_names, base, problem.covariates)
        r = problem.y - jet.value
        for i, (g, j, col) in enumerate(zip(problem.theta_blocks, problem.theta_rows, problem.theta_cols)):
            if j != col:
                continue
            b, row = problem.joint(int(g), int(j))
            blk = problem.blocks[b]
            cols = blk.offset + blk.codes * blk.q + row
            c = jet.grad[:, blk.param] * problem.Z[blk.param, np.arange(problem.n), cols]
            ss = np.bincount(blk.codes, c * c, blk.n_levels)
            ok = ss > 0
            if ok.sum() < 2:
                continue
            z = np.where(ok, np.bincount(blk.codes, c * r, blk.n_levels) / np.where(ok, ss, 1.0), 0.0)
            within = float(np.sum((r - c * z[blk.codes]) ** 2)) / max(problem.n - int(ok.sum()), 1)
            moments.append((i, z[ok], ss[ok], within))
    floor = min([w for *_, w in moments if w > 0 and math.isfinite(w)], default=sigma**2)
    s2 = min(floor, sigma**2)
    for i, z, ss, _ in moments:
        tau2 = float(np.var(z, ddof=1) - np.mean(s2 / ss))
        value = math.sqrt(tau2 / s2) if tau2 > 0 else 0.1
        if math.isfinite(value):
            theta[i] = min(max(value, 0.05), 20.0)
    return theta
