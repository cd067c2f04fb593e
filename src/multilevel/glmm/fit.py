"""Fitting GLMMs: Laplace (or adaptive quadrature) deviance optimized as lme4 does.

Stage 1 optimizes theta with beta estimated inside PIRLS (lme4's ``nAGQ = 0``);
stage 2 optimizes theta and beta together on the Laplace deviance (or the
adaptive Gauss-Hermite deviance for ``nagq > 1``), from the stage-1 estimates.
Families with a dispersion or shape parameter have its log in the parameter
vector of both stages.
"""

from __future__ import annotations

import dataclasses
import math
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConvergenceWarning, ModelError, SingularFitWarning, warn
from ..family import Family
from ..linalg import numpy_backend as la
from ..model.design import Design
from ..model.spec import ModelSpec
from ..optim.numdiff import central_jacobian
from ..optim.optimize import SINGULAR_TOL, OptSummary, bobyqa, lbfgsb
from .agq import agq_deviance, check_agq
from .boundary import PROBE_THETAS, inside_the_link, singular_vector_term, zero_scalar_probe
from .gradient import gradient_available, laplace_gradient
from .pirls import GlmmProblem, PirlsResult


@dataclass(frozen=True)
class GlmmEstimate:
    theta: np.ndarray
    beta: np.ndarray
    disp: float
    deviance: float  # -2 x (Laplace or quadrature) log-likelihood
    pirls: PirlsResult
    stage1: OptSummary
    stage2: OptSummary
    problem: GlmmProblem
    laplace: str = "observed"  # the curvature of the Laplace / quadrature deviance used


def _split(x: np.ndarray, k: int, p: int, has_disp: bool) -> tuple[np.ndarray, np.ndarray, float]:
    theta = x[:k]
    beta = x[k : k + p]
    disp = math.exp(x[k + p]) if has_disp else 1.0
    return theta, beta, disp


#: stopping rule of the gradient-based stage 2: largest |gradient| in the scaled units
GTOL = 1e-5
#: the largest scaled gradient accepted at the end of stage 2: in the scaled
#: coordinates the Hessian is near 2 I, so the deviance is within ~|g|^2 / 4 of a
#: stationary point (lme4's gradient check uses 2e-3 on a similar scale)
GRADIENT_OK = 1e-3
#: the stage-2 status when the gradient stays large after every restart
GRADIENT_NOT_SMALL = "GRADIENT_NOT_SMALL"
#: restarts of stage 2 when it stops short of a small gradient
MAX_RESTARTS = 2
#: step in theta for the curvature that scales stage 2
THETA_STEP = 1e-4
#: stage-1 tolerance when stage 2 has the analytic gradient
STAGE1_FTOL_GRADIENT = 1e-4
STAGE1_PIRLS_TOL = 1e-5


def fit_glmm(
    spec: ModelSpec,
    design: Design,
    family: Family,
    *,
    nagq: int = 1,
    start: np.ndarray | None = None,
    compiled: bool = True,
    laplace: str = "observed",
    rows: Any = None,
) -> GlmmEstimate:
    """Maximum (Laplace / quadrature) likelihood estimates of a GLMM.

    With the Laplace deviance of a family whose log-likelihood is concave in eta
    (so that the conditional mode is unique), stage 2 uses the analytic gradient
    and stage 1 only locates the optimum. A vector random-effects term can have
    several boundary optima (one variance at 0 or a correlation at +-1); when the
    fast path ends on such a boundary, the fit is repeated with lme4's thorough
    stage 1 and the better optimum kept. When stage 2 would start outside the
    family's support (a mean the link cannot give), BOBYQA finds the support and
    the gradient path finishes from there. ``compiled``: PIRLS's row passes run
    through the Numba kernels; ``rows``: the row passes (default: the design's rows in
    memory, :class:`~multilevel.glmm.rows.GlmmRows`).

    ``laplace``: ``"observed"`` (default) takes the Laplace approximation's
    log-determinant (and the scale of adaptive quadrature) from the observed
    Hessian of the joint log density at the conditional modes, as glmmTMB does;
    ``"expected"`` from the expected (Fisher) weights, as lme4 does. The two agree
    for canonical links. Where the observed information is not positive definite
    at the optimum, the fit is repeated with the expected one, with a warning.
    For a family with a scale dispersion (Gamma, inverse Gaussian, Gaussian with a
    non-identity link) ``"expected"`` is lme4's ``glmer`` criterion instead
    (:class:`~multilevel.glmm.pirls.GlmmProblem`, ``lme4_criterion``; ``nagq`` 0 or
    1): theta and beta only, by BOBYQA (no analytic gradient), the dispersion lme4's
    ``sigma^2`` after. Its log-likelihood is lme4's ``logLik``, not a Laplace
    approximation of the likelihood.
    A scalar variance estimated at 0 is probed from above (see :func:`_probe_zero_scalars`).
    """
    if nagq < 0:
        raise ModelError("nagq must be 0 (PIRLS-only estimates), 1 (Laplace) or a number of quadrature nodes")
    if nagq > 1:
        check_agq(spec, nagq)
    prob = GlmmProblem(spec, design, family, compiled=compiled, laplace=laplace, nagq=nagq, rows=rows)
    est = _estimate(prob, nagq, start)
    if prob.observed and not math.isfinite(est.deviance):
        prob = GlmmProblem(
            spec, design, family, compiled=compiled, laplace="expected", nagq=nagq, rows=prob.rows
        )
        lme4 = "; for this family that is lme4's glmer criterion" if prob.lme4_criterion else ""
        warn(
            "the observed information of the random effects is not positive definite at the "
            "optimum, so the observed-information Laplace approximation does not exist there; "
            f"refitted with the expected information (laplace='expected', as lme4){lme4}",
            ConvergenceWarning,
        )
        est = _estimate(prob, nagq, start)
    if prob.lme4_criterion:  # the dispersion lme4 reports with its criterion
        est = dataclasses.replace(est, disp=prob.lme4_dispersion(est.pirls))
    return dataclasses.replace(est, laplace=prob.laplace)


def _estimate(prob: GlmmProblem, nagq: int, start: np.ndarray | None) -> GlmmEstimate:
    """The two stages, the boundary retries, and the scalar boundary probe."""
    spec = prob.spec
    theta0 = spec.theta_map.initial() if start is None else np.asarray(start, dtype=float)
    fast = nagq == 1 and gradient_available(prob) and prob.family.log_concave
    est = _two_stages(prob, nagq, theta0, quick_stage1=fast, gradient=fast)
    if fast and singular_vector_term(spec, est.theta):
        other = _two_stages(prob, nagq, theta0, quick_stage1=False, gradient=True)
        if other.deviance < est.deviance - 1e-9 * abs(est.deviance):
            est = other
    if nagq >= 1:
        est = _probe_zero_scalars(est, nagq, gradient=fast)
    return inside_the_link(
        est, lambda shrink: _two_stages(prob, nagq, theta0 * shrink, quick_stage1=fast, gradient=fast)
    )


def _probe_zero_scalars(est: GlmmEstimate, nagq: int, *, gradient: bool) -> GlmmEstimate:
    """Stage 2 again from above a scalar variance estimated at 0, where the deviance is
    lower there (:func:`~multilevel.glmm.boundary.zero_scalar_probe`); the better optimum kept."""
    prob = est.problem
    dev2 = _Stage2Deviance(prob, nagq, est.pirls.u)
    theta = zero_scalar_probe(
        prob.spec, est.theta, est.deviance, lambda th: dev2.at(th, est.beta, est.disp)[0]
    )
    if theta is None:
        return est
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        r1 = prob.pirls(theta, None, est.disp, u0=est.pirls.u, beta0=est.beta)
    other = _stage2(prob, nagq, est.stage1, r1, theta, est.disp, gradient=gradient)
    if not other.deviance < est.deviance:
        return est
    s2, s0 = other.stage2, est.stage2
    stage2 = dataclasses.replace(
        s2,
        optimizer=f"{s0.optimizer}; then, from above a variance at 0, {s2.optimizer}",
        start=s0.start,
        n_evals=s0.n_evals + s2.n_evals + len(PROBE_THETAS),
        seconds=s0.seconds + s2.seconds,
    )
    return dataclasses.replace(other, stage2=stage2)


def _two_stages(
    prob: GlmmProblem, nagq: int, theta0: np.ndarray, *, quick_stage1: bool, gradient: bool
) -> GlmmEstimate:
    """lme4's two stages: theta (and the dispersion) with beta inside PIRLS, then
    everything on the Laplace or quadrature deviance (``nagq = 0`` stops after one)."""
    stage1, r1, disp1 = _stage1(prob, theta0, quick_stage1=quick_stage1)
    theta1 = np.asarray(stage1.end[: prob.spec.theta_map.size])
    if nagq == 0:
        return GlmmEstimate(theta1, r1.beta, disp1, r1.laplace_deviance, r1, stage1, stage1, prob)
    return _stage2(prob, nagq, stage1, r1, theta1, disp1, gradient=gradient)


def _stage1(
    prob: GlmmProblem, theta0: np.ndarray, *, quick_stage1: bool
) -> tuple[OptSummary, PirlsResult, float]:
    """Stage 1: theta (and log dispersion) by BOBYQA, beta inside PIRLS."""
    spec = prob.spec
    tm = spec.theta_map
    k = tm.size
    has_disp = prob.estimates_dispersion
    disp0 = 1.0
    if has_disp:
        mu_bar = prob.rows.run("mean_response", None)[1].value
        disp0 = max(prob.rows.run("dispersion_start", None, mu_bar)[1].value, 1e-8)

    warm: dict[str, Any] = {"u": None, "beta": None}
    # a quick stage 1 only locates the optimum for stage 2: its modes need less
    # precision, and ftol 1e-4 (measured) halves it and costs stage 2 an iteration or two
    tol1 = STAGE1_PIRLS_TOL if quick_stage1 else 1e-10

    def f1(x: np.ndarray) -> float:
        theta = x[:k]
        disp = math.exp(x[k]) if has_disp else 1.0
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                r = prob.pirls(theta, None, disp, u0=warm["u"], beta0=warm["beta"], tol=tol1)
        except (np.linalg.LinAlgError, FloatingPointError):
            return math.inf
        if not math.isfinite(r.laplace_deviance):
            return math.inf
        warm["u"], warm["beta"] = r.u, r.beta
        return r.laplace_deviance

    x1 = np.concatenate([theta0, [math.log(disp0)] if has_disp else []])
    lower1 = np.concatenate([tm.lower_bounds, [-np.inf] if has_disp else []])
    xs, fs, n1, code1, sec1 = bobyqa(
        f1,
        x1,
        lower1,
        ftol_rel=STAGE1_FTOL_GRADIENT if quick_stage1 else 1e-8,
        initial_step=0.1 * np.maximum(np.abs(x1), 0.5),
    )
    stage1 = OptSummary("nlopt LN_BOBYQA (stage 1: beta in PIRLS)", tuple(x1), tuple(xs), fs, n1, sec1, code1)
    r1 = prob.pirls(xs[:k], None, math.exp(xs[k]) if has_disp else 1.0, u0=warm["u"], beta0=warm["beta"])
    disp1 = math.exp(xs[k]) if has_disp else 1.0
    return stage1, r1, disp1


class _Stage2Deviance:
    """The stage-2 deviance (and its gradient) of x = (theta, beta, log dispersion),
    PIRLS warm-started from the last finite point, the lowest point evaluated kept."""

    def __init__(self, prob: GlmmProblem, nagq: int, u0: list[np.ndarray]) -> None:
        self.prob, self.nagq = prob, nagq
        self.k, self.p = prob.spec.theta_map.size, len(prob.spec.fixed_names)
        self.has_disp = prob.estimates_dispersion
        self.u = u0
        # the lowest deviance evaluated with the gradient, its point and PIRLS result
        self.best: list[tuple[float, np.ndarray, PirlsResult]] = []

    def at(self, theta: np.ndarray, beta: np.ndarray, disp: float) -> tuple[float, PirlsResult]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            r = self.prob.pirls(theta, beta, disp, u0=self.u)
        if self.nagq == 1:
            return r.laplace_deviance, r
        return agq_deviance(self.prob, r, theta, beta, disp, self.nagq), r

    def value(self, x: np.ndarray) -> float:
        theta, beta, disp = _split(x, self.k, self.p, self.has_disp)
        try:
            dev, r = self.at(theta, beta, disp)
        except (np.linalg.LinAlgError, FloatingPointError):
            return math.inf
        if math.isfinite(dev):
            self.u = r.u
        return dev

    def value_and_gradient(self, x: np.ndarray) -> tuple[float, np.ndarray]:
        theta, beta, disp = _split(x, self.k, self.p, self.has_disp)
        try:
            dev, r = self.at(theta, beta, disp)
            if not math.isfinite(dev):
                return math.inf, np.zeros_like(x)
            g = laplace_gradient(self.prob, r, theta, beta, disp)
        except (np.linalg.LinAlgError, FloatingPointError):
            return math.inf, np.zeros_like(x)
        self.u = r.u
        if not self.best or dev < self.best[0][0]:
            self.best[:] = [(dev, x.copy(), r)]
        return dev, g


def _stage2(
    prob: GlmmProblem,
    nagq: int,
    stage1: OptSummary,
    r1: PirlsResult,
    theta1: np.ndarray,
    disp1: float,
    *,
    gradient: bool,
) -> GlmmEstimate:
    """Stage 2: theta, beta (and log dispersion) on the Laplace / AGQ deviance, by
    L-BFGS-B on the analytic gradient where available, else BOBYQA."""
    spec = prob.spec
    tm = spec.theta_map
    k = tm.size
    p = len(spec.fixed_names)
    has_disp = prob.estimates_dispersion
    beta1 = r1.beta
    dev2 = _Stage2Deviance(prob, nagq, r1.u)
    deviance, f2, fg2, best = dev2.at, dev2.value, dev2.value_and_gradient, dev2.best
    x2 = np.concatenate([theta1, beta1, [math.log(disp1)] if has_disp else []])
    lower2 = np.concatenate([tm.lower_bounds, np.full(p, -np.inf), [-np.inf] if has_disp else []])
    # beta's initial steps: half the stage-1 (conditional) standard errors; measured
    # to save 15-20% of the evaluations over steps proportional to |beta|
    Vb = la.vcov_beta(r1.system, r1.factor, 1.0)
    se = np.sqrt(np.maximum(np.diag(Vb), 1e-12))
    step2 = np.concatenate([0.1 * np.maximum(np.abs(theta1), 0.1), 0.5 * se, [0.1] if has_disp else []])
    x_opt: np.ndarray | None = None
    if gradient:
        _x_last, n2, code2, sec2 = _minimize_with_gradient(fg2, x2, lower2, k, p, Vb)
        name2 = "L-BFGS-B (stage 2: theta and beta, analytic gradient)"
        # the best point seen (the last iterate, unless a restart went astray); none
        # finite means the start was outside the family's support: BOBYQA copes
        x_opt = best[0][1] if best else None
    if x_opt is None:
        x_opt, f_opt, n2, code2, sec2 = bobyqa(f2, x2, lower2, ftol_rel=1e-12, initial_step=step2)
        name2 = "nlopt LN_BOBYQA (stage 2: theta and beta)"
        best.clear()
        if gradient and math.isfinite(f_opt):
            # BOBYQA found the family's support; the gradient path finishes from there
            _x_last, n_g, code_g, sec_g = _minimize_with_gradient(fg2, x_opt, lower2, k, p, Vb)
            if best and best[0][0] < f_opt:
                x_opt, code2 = best[0][1], code_g
                name2 = "nlopt LN_BOBYQA, then L-BFGS-B (stage 2: theta and beta)"
            n2, sec2 = n2 + n_g, sec2 + sec_g
    theta, beta, disp = _split(x_opt, k, p, has_disp)
    theta = np.where(np.isfinite(tm.lower_bounds), np.maximum(theta, tm.lower_bounds), theta)
    x_final = np.concatenate([theta, beta, x_opt[k + p :]])
    if best and np.array_equal(best[0][1], x_final):
        dev, r = best[0][0], best[0][2]
    else:
        dev, r = deviance(theta, beta, disp)
    stage2 = OptSummary(name2, tuple(x2), tuple(x_opt), dev, n2, sec2, code2)
    return GlmmEstimate(theta, beta, disp, dev, r, stage1, stage2, prob)


def _minimize_with_gradient(
    fg_raw: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x0: np.ndarray,
    lower: np.ndarray,
    k: int,
    p: int,
    Vb: np.ndarray,
) -> tuple[np.ndarray, int, str, float]:
    """L-BFGS-B on the Laplace deviance in rescaled coordinates.

    L-BFGS-B's first steps and its stopping rule depend on the scale of the
    coordinates, so it works on ``x = x0 + A z``: for beta, ``A = chol(Vb)``
    (the stage-1 covariance, so the Hessian in z is near 2 I); for theta, one
    over the square root of the curvature from the change of the gradient over
    one step in every theta at once (one extra evaluation; a diagonal scaling,
    so the bounds stay boxes). If it stops with
    a projected gradient still large (a poor scaling far from the optimum), it
    restarts from where it stopped with the scaling measured there.

    Returns (x, evaluations, status, seconds).
    """
    t0 = time.perf_counter()
    x_start = np.asarray(x0, dtype=float)
    # one evaluation remembered: the start is asked for twice, the end once more
    memo: list[tuple[np.ndarray, float, np.ndarray]] = []
    n_evals = 0

    def fg(x: np.ndarray) -> tuple[float, np.ndarray]:
        nonlocal n_evals
        if memo and np.array_equal(memo[0][0], x):
            return memo[0][1], memo[0][2]
        n_evals += 1
        val, g = fg_raw(x)
        memo[:] = [(x.copy(), val, g)]
        return val, g

    A = np.eye(x_start.size)
    try:
        A[k : k + p, k : k + p] = np.linalg.cholesky(Vb)
    except np.linalg.LinAlgError:
        A[k : k + p, k : k + p] = np.diag(np.sqrt(np.maximum(np.diag(Vb), 1e-12)))
    code, g_max = "", math.inf
    for _attempt in range(MAX_RESTARTS + 1):
        _, g0 = fg(x_start)
        xj = x_start.copy()
        xj[:k] += THETA_STEP
        curv = (fg(xj)[1][:k] - g0[:k]) / THETA_STEP
        A = A.copy()
        A[np.arange(k), np.arange(k)] = np.where(
            curv > 1e-8, 1.0 / np.sqrt(np.maximum(0.5 * curv, 1e-300)), 1.0
        )
        lower_z = np.where(np.isfinite(lower), (lower - x_start) / np.diag(A), -np.inf)

        def fg_z(z: np.ndarray, A: np.ndarray = A, xs: np.ndarray = x_start) -> tuple[float, np.ndarray]:
            val, g = fg(xs + A @ z)
            return val, A.T @ g

        z_opt, _f, _n, code, _sec = lbfgsb(fg_z, np.zeros_like(x_start), lower_z, gtol=GTOL)
        x_end = x_start + A @ z_opt
        g_final = A.T @ fg(x_end)[1]  # the last evaluation, as a rule: remembered
        x_start = x_end
        at_bound = (x_start <= lower) & (g_final > 0)
        g_max = float(np.max(np.abs(np.where(at_bound, 0.0, g_final)), initial=0.0))
        if g_max <= GRADIENT_OK:
            return x_start, n_evals, "LBFGSB_CONVERGED", time.perf_counter() - t0
    status = f"{GRADIENT_NOT_SMALL} (max |scaled gradient| {g_max:.2g}; L-BFGS-B: {code})"
    return x_start, n_evals, status, time.perf_counter() - t0


def deviance_function(
    prob: GlmmProblem, nagq: int, k: int, p: int, has_disp: bool, u0: list[np.ndarray]
) -> Callable[[np.ndarray], float]:
    """x = (theta, beta[, log disp]) -> deviance, warm-started at ``u0`` (for Hessians)."""

    def f(x: np.ndarray) -> float:
        theta, beta, disp = _split(x, k, p, has_disp)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            r = prob.pirls(theta, beta, disp, u0=u0)
        return r.laplace_deviance if nagq <= 1 else agq_deviance(prob, r, theta, beta, disp, nagq)

    return f


def gradient_function(
    prob: GlmmProblem, k: int, p: int, has_disp: bool, u0: list[np.ndarray]
) -> Callable[[np.ndarray], np.ndarray]:
    """x = (theta, beta[, log disp]) -> analytic gradient of the Laplace deviance."""

    def g(x: np.ndarray) -> np.ndarray:
        theta, beta, disp = _split(x, k, p, has_disp)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            r = prob.pirls(theta, beta, disp, u0=u0)
        return laplace_gradient(prob, r, theta, beta, disp)

    return g


def hessian_from_gradient(g: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """Central differences of an analytic gradient (2 evaluations per parameter),
    symmetrized; steps 1e-4 (|x| + 0.1), truncation error ~1e-8 relative."""
    H = central_jacobian(g, x, 1e-4 * (np.abs(x) + 0.1))
    return 0.5 * (H + H.T)


def singular_and_messages(spec: ModelSpec, theta: np.ndarray) -> tuple[bool, tuple[str, ...]]:
    diag = spec.theta_map.row == spec.theta_map.col
    singular = bool(np.any(theta[diag] < SINGULAR_TOL))
    msgs: tuple[str, ...] = ()
    if singular:
        msgs = (
            "boundary (singular) fit: a variance is estimated as 0 or a correlation as +-1; "
            "consider simplifying the random-effects structure",
        )
        warn(msgs[0], SingularFitWarning)
    return singular, msgs


SEPARATION_ETA = 20.0


def separation_message(family: Family, est: GlmmEstimate) -> str | None:
    """A message when fitted probabilities reach 0 or 1 (separation), else None."""
    if not family.bounded_mean:
        return None
    n_extreme = est.problem.rows.run("extreme", est.pirls.state, SEPARATION_ETA)[1]
    if n_extreme == 0:
        return None
    return (
        f"complete or quasi-complete separation: {n_extreme} fitted probabilities are 0 or 1 "
        "to machine precision, so some coefficients (and their SEs) are not finite estimates. "
        "Check for predictors that perfectly separate the outcomes; consider a penalized or "
        "Bayesian fit (multilevel.sample) with proper priors"
    )
