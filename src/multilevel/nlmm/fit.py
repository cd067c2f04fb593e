"""Maximum likelihood for a nonlinear mixed model: the optimizer over (beta, theta)
on the Laplace deviance (sigma profiled), then over (beta, theta, log sigma) on the
quadrature deviance when ``nagq > 1``; standard errors from the Hessian of the
deviance; the convergence verdict.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConvergenceWarning, ModelError, warn
from ..model.nonlinear import NlmmProblem
from ..optim.numdiff import central_jacobian, jacobian_hessian
from ..optim.optimize import SINGULAR_TOL, OptSummary, bobyqa
from ..optim.quasi_newton import minimize_gradient
from .laplace import NlmmObjective
from .numpy_laplace import NumpyLaplace
from .quadrature import check_agq
from .start import initial_beta, population_start, theta_start

GRADIENT_TOL = 2e-3  # max |H^{-1} g| of the deviance at the optimum, as lme4's check
FORWARD_STEP, CENTRAL_STEP = 1e-5, 5e-4  # relative steps of the Hessian's differences
ASYMMETRY_TOL = 1e-3  # of a forward-difference Hessian, relative to its diagonal (its SE error is smaller)
OK_CODES = (
    "NLOPT_SUCCESS",
    "NLOPT_FTOL_REACHED",
    "NLOPT_XTOL_REACHED",
    "NLOPT_ROUNDOFF_LIMITED",
    "LBFGSB_SUCCESS",
    "QUASI_NEWTON_SUCCESS",
)


@dataclass(frozen=True)
class NlmmEstimate:
    """The estimates at the optimum."""

    beta: np.ndarray
    theta: np.ndarray
    sigma: float
    u: np.ndarray  # spherical conditional modes
    b: np.ndarray  # random effects, Lambda u
    deviance: float  # -2 log L (Laplace or quadrature)
    pwrss: float
    vcov: np.ndarray  # of beta
    hessian: np.ndarray = field(repr=False)  # of the deviance over (beta, free theta[, log sigma])
    fitted: np.ndarray = field(repr=False)
    pnls_converged: bool = True


def objective_function(obj: Any, nagq: int) -> Any:
    """The deviance of the optimizer's vector: (beta, theta) for Laplace, (beta, theta,
    log sigma) for quadrature."""
    p, t = obj.problem.p, obj.problem.n_theta
    if nagq == 1:
        return lambda x: obj.laplace(x[:p], x[p : p + t])
    return lambda x: obj.agq(x[:p], x[p : p + t], math.exp(x[p + t]), nagq)


def _optimize(
    f: Any, x0: np.ndarray, lower: np.ndarray, step: np.ndarray, maxeval: int
) -> tuple[np.ndarray, float, int, str]:
    x, fx, n, code, _ = bobyqa(
        f, x0, lower, initial_step=step, maxeval=maxeval, ftol_rel=1e-13, xtol_abs=1e-10
    )
    # a restart from the optimum with small steps catches BOBYQA's early stops
    x2, f2, n2, code2, _ = bobyqa(f, x, lower, initial_step=np.maximum(step * 0.01, 1e-6), maxeval=maxeval)
    if f2 < fx:
        x, fx, code = x2, f2, code2
    return x, fx, n + n2, code


def _quasi_newton(obj: Any, x0: np.ndarray, lower: np.ndarray, maxeval: int) -> tuple[Any, ...]:
    """Quasi-Newton from a differenced Hessian (:mod:`multilevel.optim.quasi_newton`) on
    the Laplace deviance and its exact gradient; (x, deviance, gradient, evaluations,
    code). L-BFGS-B takes over from where it stopped if it did not converge."""
    res = minimize_gradient(lambda x: obj.laplace_and_gradient(x)[:2], x0, lower, max_evals=maxeval)
    if res.converged:
        return res.x, res.fval, res.grad, res.evaluations, "QUASI_NEWTON_SUCCESS"
    start = res.x if math.isfinite(res.fval) else x0
    x, dev, n, code = _optimize_gradient(obj, start, lower, maxeval)
    return x, dev, None, n + res.evaluations, code


def _optimize_gradient(obj: Any, x0: np.ndarray, lower: np.ndarray, maxeval: int) -> tuple[Any, ...]:
    """L-BFGS-B on the Laplace deviance and its exact gradient (:meth:`laplace_and_gradient`);
    (x, deviance, evaluations, code), code "NLOPT_SUCCESS"-like when it converged."""
    from scipy.optimize import minimize

    bounds = [(lo if math.isfinite(lo) else None, None) for lo in lower]
    count = [0]

    def f(x: np.ndarray) -> tuple[float, np.ndarray]:
        count[0] += 1
        v, g, _ = obj.laplace_and_gradient(x)
        if not (math.isfinite(v) and np.all(np.isfinite(g))):
            return math.inf, np.zeros_like(x)
        return v, g

    res = minimize(
        f,
        x0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxfun": maxeval, "maxiter": maxeval, "ftol": 1e-12, "gtol": 1e-7, "maxcor": 20},
    )
    code = (
        "LBFGSB_SUCCESS" if res.success or "REL_REDUCTION" in str(res.message) else f"LBFGSB: {res.message}"
    )
    return np.asarray(res.x), float(res.fun), count[0], code


def _hessian(f: Any, x: np.ndarray, free: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian of ``f`` over the free coordinates (Richardson differences)."""
    idx = np.flatnonzero(free)

    def sub(v: np.ndarray) -> np.ndarray:
        full = x.copy()
        full[idx] = v
        return np.array([f(full)])

    J, H = jacobian_hessian(sub, x[idx], d=0.002, eps=1e-5, levels=1)
    return J.ravel(), H


def _hessian_from_gradient(
    obj: Any, x: np.ndarray, free: np.ndarray, at_x: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Gradient and Hessian of the Laplace deviance over the free coordinates: forward
    differences of the exact gradient (one gradient per coordinate, ``at_x`` the
    gradient at x if the optimizer has it). Differences of an exact gradient make a
    matrix whose asymmetry measures its error; where that is above ASYMMETRY_TOL
    (relative to the diagonal), central differences (two gradients per coordinate)
    replace it."""
    idx = np.flatnonzero(free)

    def grad(v: np.ndarray) -> np.ndarray:
        full = x.copy()
        full[idx] = v
        return obj.laplace_and_gradient(full)[1][idx]

    v = x[idx]
    g0 = grad(v) if at_x is None else at_x[idx]
    tiny = 1e-5 * (np.abs(v) < 1e-8)
    h = FORWARD_STEP * np.abs(v) + tiny
    J = np.empty((v.size, v.size))
    for j in range(v.size):
        e = np.zeros(v.size)
        e[j] = h[j]
        J[:, j] = (grad(v + e) - g0) / h[j]
    scale = np.sqrt(np.abs(np.outer(np.diag(J), np.diag(J)))) + 1e-300
    if not (np.all(np.isfinite(J)) and float(np.max(np.abs(J - J.T) / scale)) <= ASYMMETRY_TOL):
        J = central_jacobian(grad, v, CENTRAL_STEP * np.abs(v) + tiny)
    return g0, 0.5 * (J + J.T)


def _standard_errors(H: np.ndarray, p: int) -> tuple[np.ndarray, bool]:
    """vcov of beta: twice the inverse Hessian of the deviance, its beta block."""
    try:
        np.linalg.cholesky(H)
        inv = np.linalg.inv(H)
        return 2.0 * inv[:p, :p], True
    except np.linalg.LinAlgError:
        return np.full((p, p), np.nan), False


def _verdict(
    code: str, dev: float, grad: np.ndarray, H: np.ndarray, pos_def: bool, pnls_ok: bool
) -> tuple[bool, list[str]]:
    msgs = []
    if code not in OK_CODES:
        msgs.append(f"the optimizer stopped with {code}")
    if not math.isfinite(dev):
        msgs.append("the deviance at the optimum is not finite")
    if not pnls_ok:
        msgs.append("penalized nonlinear least squares did not converge at the optimum")
    if not pos_def:
        msgs.append("the Hessian of the deviance is not positive definite")
    scaled = np.abs(grad) / np.sqrt(np.maximum(np.abs(np.diag(H)), 1e-12)) if H.size else grad
    if scaled.size and not (np.all(np.isfinite(scaled)) and float(np.max(scaled)) < GRADIENT_TOL):
        msgs.append(
            f"the scaled gradient at the optimum is {float(np.max(scaled)):.2g} (tolerance {GRADIENT_TOL})"
        )
    return not msgs, msgs


def fit_problem(
    problem: NlmmProblem, *, nagq: int = 1, start: Mapping[str, Any] | None = None, maxeval: int = 20_000
) -> tuple[NlmmEstimate, OptSummary]:
    """Fit by Laplace (``nagq=1``) or adaptive quadrature; returns the estimates and the record."""
    if not isinstance(nagq, int) or isinstance(nagq, bool) or nagq < 1:
        raise ModelError(f"nagq must be a positive integer, got {nagq!r}")
    if nagq > 1:
        check_agq(problem, nagq)
    t0 = time.perf_counter()
    if not problem.gaussian:
        return _fit_glm(problem, nagq, start, maxeval, t0)
    beta0, sd0 = population_start(problem, initial_beta(problem, start))
    # the Laplace fit in NumPy (analytic gradient, nothing to compile); quadrature on JAX
    obj: Any = NumpyLaplace(problem)
    p, t = problem.p, problem.n_theta
    x0 = np.concatenate([beta0, theta_start(problem, beta0, sd0)])
    lower = np.concatenate([np.full(p, -np.inf), problem.theta_lower()])
    step = np.concatenate([0.05 * np.abs(beta0) + 0.05, np.full(t, 0.25)])
    x, dev, g_opt, n_evals, code = _quasi_newton(obj, x0, lower, maxeval)
    if code not in OK_CODES:  # the derivative-free path, as before the gradient
        xb, devb, nb, codeb = _optimize(objective_function(obj, 1), x, lower, step, maxeval)
        n_evals += nb
        if devb <= dev or not math.isfinite(dev):
            x, dev, code, g_opt = xb, devb, codeb, None
    if nagq > 1:
        obj = NlmmObjective(problem)
        m = obj.modes(x[:p], x[p:])
        x = np.append(x, 0.5 * math.log(m["pwrss"] / problem.n))
        lower, step = np.append(lower, -np.inf), np.append(step * 0.1, 0.05)
        x, dev, n2, code = _optimize(objective_function(obj, nagq), x, lower, step, maxeval)
        n_evals += n2
        g_opt = None
    f = objective_function(obj, nagq)
    free = np.ones(x.size, bool)
    free[p : p + t] = ~((problem.theta_rows == problem.theta_cols) & (np.abs(x[p : p + t]) < SINGULAR_TOL))
    if nagq == 1:
        grad, H = _hessian_from_gradient(obj, x, free, g_opt)
    else:
        grad, H = _hessian(f, x, free)
    m = obj.modes(x[:p], x[p : p + t])  # PNLS from the last modes, at the optimum
    sigma = math.exp(x[-1]) if nagq > 1 else math.sqrt(m["pwrss"] / problem.n)
    return _finish(problem, x0, x, dev, n_evals, code, grad, H, m, sigma, t0)


def _finish(
    problem: NlmmProblem,
    x0: np.ndarray,
    x: np.ndarray,
    dev: float,
    n_evals: int,
    code: str,
    grad: np.ndarray,
    H: np.ndarray,
    m: dict[str, Any],
    sigma: float,
    t0: float,
) -> tuple[NlmmEstimate, OptSummary]:
    """The estimate and the optimizer's record at the optimum ``x``, the verdict warned."""
    p, t = problem.p, problem.n_theta
    vcov, pos_def = _standard_errors(H, p)
    ok, msgs = _verdict(code, dev, grad, H, pos_def, m["converged"])
    if not ok:
        warn("; ".join(msgs) + ". Check the start= values or simplify the random effects", ConvergenceWarning)
    theta = x[p : p + t]
    est = NlmmEstimate(
        beta=x[:p],
        theta=theta,
        sigma=sigma,
        u=m["u"],
        b=problem.lambda_matrix(theta) @ m["u"],
        deviance=dev,
        pwrss=m["pwrss"],
        vcov=vcov,
        hessian=H,
        fitted=m["mu"],
        pnls_converged=m["converged"],
    )
    return est, _record(problem, x0, x, dev, n_evals, code, ok, msgs, t0)


def _record(
    problem: NlmmProblem,
    x0: np.ndarray,
    x: np.ndarray,
    dev: float,
    n_evals: int,
    code: str,
    ok: bool,
    msgs: list[str],
    t0: float,
) -> OptSummary:
    """The optimizer's record of a fit (theta after beta in ``x``)."""
    diag = problem.theta_rows == problem.theta_cols
    theta = x[problem.p : problem.p + problem.n_theta]
    return OptSummary(
        optimizer={"LBFGSB": "L-BFGS-B", "QUASI_": "quasi-Newton"}.get(code[:6], "bobyqa"),
        start=tuple(map(float, x0)),
        end=tuple(map(float, x)),
        fval=float(dev),
        n_evals=n_evals,
        seconds=time.perf_counter() - t0,
        return_code=code,
        converged=ok and math.isfinite(dev),
        singular=bool(np.any(np.abs(theta[diag]) < SINGULAR_TOL)),
        messages=tuple(msgs),
    )


def _fit_glm(
    problem: NlmmProblem, nagq: int, start: Mapping[str, Any] | None, maxeval: int, t0: float
) -> tuple[NlmmEstimate, OptSummary]:
    """A binomial or Poisson response: BOBYQA on the Laplace deviance
    (:mod:`multilevel.nlmm.glm_laplace`), then on the quadrature deviance for ``nagq > 1``;
    SEs from the finite-difference Hessian of the deviance."""
    from .glm_laplace import NumpyGlmLaplace

    fam = problem.family.name
    if nagq > 1:
        check_agq(problem, nagq)
    if start is None:
        raise ModelError(
            f"a {fam} nonlinear model needs start= values on the link scale (the self-starting "
            "routines fit Gaussian curves to the response itself)"
        )
    obj = NumpyGlmLaplace(problem)
    beta0 = obj.population(initial_beta(problem, start))
    p, t = problem.p, problem.n_theta
    x0 = np.concatenate([beta0, problem.theta_initial()])
    lower = np.concatenate([np.full(p, -np.inf), problem.theta_lower()])
    step = np.concatenate([0.05 * np.abs(beta0) + 0.05, np.full(t, 0.25)])
    f = objective_function(obj, 1)
    x, dev, n_evals, code = _optimize(f, x0, lower, step, maxeval)
    if nagq > 1:  # from the Laplace optimum, on the quadrature deviance

        def f(x: np.ndarray) -> float:
            return obj.agq(x[:p], x[p:], nagq)

        x, dev, n2, code = _optimize(f, x, lower, step * 0.1, maxeval)
        n_evals += n2
    free = np.ones(x.size, bool)
    free[p:] = ~((problem.theta_rows == problem.theta_cols) & (np.abs(x[p:]) < SINGULAR_TOL))
    grad, H = _hessian(f, x, free)
    m = obj.modes(x[:p], x[p:])
    return _finish(problem, x0, x, dev, n_evals, code, grad, H, m, 1.0, t0)
