"""Indirect inference: the estimator, its covariance and the test of the moments.

The estimate minimizes ``Q(theta) = r' W r`` with ``r = beta_obs - mean_s beta_s(theta)``
(Gourieroux, Monfort and Renault 1993; Smith 1993), the auxiliary estimates
``beta`` on the observed data and on ``S`` simulations with common random numbers.
``W`` is the inverse covariance ``Omega`` of the auxiliary estimates, taken from
independent simulations: first at the start, then again at the first estimate,
from which the minimization is run once more (the two-step efficient estimator).

The minimizer is Gauss-Newton with Levenberg-Marquardt damping: the binding
function's Jacobian ``D = d mean beta / d theta`` by central differences (one call
of the auxiliary for the centre and every shifted point), which the covariance
needs anyway. With ``W = Omega^-1`` the covariance of the estimate is

    V = (1 + 1/S) (D' W D)^-1 D' W Omega W D (D' W D)^-1,

and ``J = r' [(1 + 1/S) Omega]^-1 r`` is chi-squared with ``k - d`` degrees of
freedom when the simulator is right (Hansen's test of the overidentifying moments).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import ConvergenceWarning, ModelError, warn
from .binding import Binding, mean_over_common


@dataclass(frozen=True)
class Settings:
    """How the estimate is sought: iterations, the stop (the Gauss-Newton step in
    units of the estimate's SEs), the relative difference step, the covariance
    simulations."""

    max_iter: int = 50
    tol: float = 1e-6
    step: float = 1e-2
    n_omega: int = 200


@dataclass(frozen=True)
class Estimate:
    """The minimizer's answer at one weight matrix."""

    theta: np.ndarray
    residual: np.ndarray  # beta_obs - mean beta(theta)
    jacobian: np.ndarray  # (k, d)
    q: float
    iterations: int
    converged: bool
    message: str
    dropped: int  # replicates left out for a failed auxiliary fit


class Bounds:
    """Box bounds on the parameters (inf where there are none)."""

    def __init__(self, lower: np.ndarray, upper: np.ndarray) -> None:
        self.lower, self.upper = lower, upper

    def clip(self, theta: np.ndarray) -> np.ndarray:
        return np.minimum(np.maximum(theta, self.lower), self.upper)

    def steps(self, theta: np.ndarray, rel: float) -> tuple[np.ndarray, np.ndarray]:
        """Per parameter: the points' shifts below and above (one of them 0 next to a bound)."""
        h = rel * np.maximum(np.abs(theta), 0.1)
        down = np.where(theta - h >= self.lower, h, 0.0)
        up = np.where(theta + h <= self.upper, h, 0.0)
        return down, up


def jacobian(
    binding: Binding, theta: np.ndarray, bounds: Bounds, rel: float
) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean auxiliary estimates at ``theta`` and their Jacobian (central differences,
    one-sided next to a bound), from one call of the auxiliary."""
    d = theta.size
    down, up = bounds.steps(theta, rel)
    if np.any(down + up == 0):
        bad = int(np.flatnonzero(down + up == 0)[0])
        raise ModelError(f"the bounds of parameter {binding.names[bad]!r} leave no room to vary it")
    # the centre goes with the shifted points, though the accepted trial step has just
    # evaluated it: a replicate whose fit fails anywhere is then left out at every point
    pts = [theta]
    for j in range(d):
        e = np.zeros(d)
        e[j] = 1.0
        pts += [theta + up[j] * e, theta - down[j] * e]
    means, dropped = mean_over_common(binding.statistics(np.array(pts)))
    D = np.column_stack([(means[1 + 2 * j] - means[2 + 2 * j]) / (up[j] + down[j]) for j in range(d)])
    return means[0], D, dropped


def _solve_step(A: np.ndarray, b: np.ndarray, lam: float, free: np.ndarray) -> np.ndarray:
    delta = np.zeros(b.size)
    idx = np.flatnonzero(free)
    if idx.size == 0:
        return delta
    Af = A[np.ix_(idx, idx)]
    damped = Af + lam * np.diag(np.maximum(np.diag(Af), 1e-300))
    delta[idx] = np.linalg.lstsq(damped, b[idx], rcond=None)[0]
    return delta


def _free(theta: np.ndarray, delta: np.ndarray, bounds: Bounds) -> np.ndarray:
    """Parameters not pressed against a bound by the step."""
    at_low = (theta <= bounds.lower) & (delta < 0)
    at_up = (theta >= bounds.upper) & (delta > 0)
    return ~(at_low | at_up)


def _check_identified(D: np.ndarray, names: tuple[str, ...], W: np.ndarray) -> None:
    A = D.T @ W @ D
    scale = np.sqrt(np.maximum(np.diag(A), 0.0))
    flat = np.flatnonzero(~(scale > 0) | ~np.isfinite(scale))
    if flat.size:
        raise ModelError(
            f"the auxiliary statistics do not move with parameter {names[flat[0]]!r} (the binding "
            "function is flat in it): add auxiliary statistics that depend on it, or check that the "
            "simulator uses it"
        )
    C = A / np.outer(scale, scale)
    ev = np.linalg.eigvalsh(C)
    if ev[0] < 1e-10 * ev[-1]:
        raise ModelError(
            "the auxiliary statistics do not identify the parameters separately (their Jacobian is "
            "rank deficient at the start): add auxiliary statistics, or fix a parameter"
        )


def _criterion(binding: Binding, obs: np.ndarray, W: np.ndarray) -> Callable[[np.ndarray], float]:
    """``Q(theta)`` from one call of the auxiliary on the ``S`` simulations."""

    def q(theta: np.ndarray) -> float:
        m, _ = mean_over_common(binding.statistics(np.asarray(theta, dtype=float)[None]))
        r = obs - m[0]
        return float(r @ W @ r) if np.all(np.isfinite(r)) else math.inf

    return q


def _polish(q: Callable[[np.ndarray], float], theta: np.ndarray, A: np.ndarray, bounds: Bounds) -> tuple:
    """Nelder-Mead from ``theta`` (a simplex of half an SE per parameter), where the
    Gauss-Newton model fails: an auxiliary fit that changes regime between the points
    of a difference makes the Jacobian wrong. Returns (theta, Q, success)."""
    from scipy.optimize import minimize as scipy_minimize

    d = theta.size
    se = np.sqrt(np.maximum(np.diag(np.linalg.pinv(A, hermitian=True)), 1e-16))
    simplex = np.vstack([theta, theta + np.diag(0.5 * se)])
    simplex = np.vstack([bounds.clip(row) for row in simplex])
    box = [
        (None if np.isinf(lo) else lo, None if np.isinf(hi) else hi)
        for lo, hi in zip(bounds.lower, bounds.upper)
    ]
    res = scipy_minimize(
        q,
        theta,
        method="Nelder-Mead",
        bounds=box,
        options={
            "initial_simplex": simplex,
            "xatol": 1e-3 * float(se.min()),
            "fatol": 1e-4,
            "maxfev": 60 * d,
        },
    )
    return np.asarray(res.x, dtype=float), float(res.fun), bool(res.success)


def minimize(
    binding: Binding, obs: np.ndarray, W: np.ndarray, start: np.ndarray, bounds: Bounds, settings: Settings
) -> Estimate:
    """Gauss-Newton with Levenberg-Marquardt damping on ``Q(theta)``; where no damped
    step lowers ``Q`` though the model predicts a decrease, one Nelder-Mead polish and
    Gauss-Newton again from there."""
    theta = bounds.clip(np.asarray(start, dtype=float))
    m, D, dropped = jacobian(binding, theta, bounds, settings.step)
    if not np.all(np.isfinite(m)):
        raise ModelError(
            "the auxiliary model failed on every simulation at the start: check the start and simulator"
        )
    _check_identified(D, binding.names, W)
    q_of = _criterion(binding, obs, W)
    r = obs - m
    q = float(r @ W @ r)
    lam, message, converged, polished = 1e-3, "", False, None
    it = 0
    while it < settings.max_iter:
        it += 1
        A, b = D.T @ W @ D, D.T @ W @ r
        accepted = False
        for _ in range(12):
            delta = _solve_step(A, b, lam, np.ones(theta.size, dtype=bool))
            delta = _solve_step(A, b, lam, _free(theta, delta, bounds))
            new = bounds.clip(theta + delta)
            q_new = q_of(new)
            if q_new <= q:
                accepted = True
                break
            lam = max(lam * 10.0, 1e-4)
        if not accepted:
            predicted = float(b @ np.linalg.lstsq(A, b, rcond=None)[0])  # in the estimate's SE units
            if predicted <= settings.tol:
                converged, message = True, "no step lowered the criterion, and none was predicted to"
                break
            if polished is not None:
                converged = polished
                message = "Nelder-Mead polish " + (
                    "converged" if polished else "stopped at its evaluation limit"
                )
                break
            new, q_new, polished = _polish(q_of, theta, A, bounds)
        step = new - theta
        size = float(step @ A @ step)  # the step in units of the estimate's covariance
        theta, lam = new, max(lam / 10.0, 1e-9) if accepted else 1e-3
        m, D, dropped = jacobian(binding, theta, bounds, settings.step)
        r = obs - m
        q = float(r @ W @ r)
        if accepted and size <= settings.tol:
            converged, message = True, "the Gauss-Newton step fell below the tolerance (in SEs)"
            break
    if not message:
        message = f"no convergence in {settings.max_iter} iterations"
    return Estimate(theta, r, D, q, it, converged, message, dropped)


def omega(binding: Binding, theta: np.ndarray, n: int) -> np.ndarray:
    """The covariance of the auxiliary estimates at ``theta`` from ``n`` simulations."""
    values = binding.omega_statistics(theta, n)
    ok = np.all(np.isfinite(values), axis=1)
    if ok.sum() == 0:
        raise ModelError(
            "the auxiliary model failed on every simulated data set: check that the simulator returns "
            "what the auxiliary takes (for a fitted or formula auxiliary the response on the fit's "
            "scale, e.g. a binomial fit's proportions of the trials, not counts) and that its values "
            "are finite"
        )
    if ok.sum() <= binding.k:
        raise ModelError(
            f"only {int(ok.sum())} of {n} covariance simulations gave auxiliary estimates, fewer than "
            f"the {binding.k} statistics: raise n_omega or check the auxiliary model"
        )
    return np.cov(values[ok], rowvar=False).reshape(binding.k, binding.k)


def weight(Omega: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    """``Omega^-1`` through its correlation form; statistics that do not vary are left out."""
    sd = np.sqrt(np.maximum(np.diag(Omega), 0.0))
    live = sd > 1e-12 * max(float(sd.max()), 1e-300)
    if not live.all():
        dead = [names[i] for i in np.flatnonzero(~live)]
        warn(
            f"auxiliary statistic(s) {', '.join(dead)} do not vary over the simulations and are left out "
            "of the criterion",
            ConvergenceWarning,
        )
    W = np.zeros_like(Omega)
    idx = np.flatnonzero(live)
    C = Omega[np.ix_(idx, idx)] / np.outer(sd[idx], sd[idx])
    W[np.ix_(idx, idx)] = np.linalg.pinv(C, rcond=1e-12, hermitian=True) / np.outer(sd[idx], sd[idx])
    return W


def covariance(est: Estimate, W: np.ndarray, Omega: np.ndarray, n_sim: int) -> np.ndarray:
    """The sandwich ``(1 + 1/S) (D'WD)^-1 D'W Omega W D (D'WD)^-1``."""
    D = est.jacobian
    bread = np.linalg.pinv(D.T @ W @ D, hermitian=True)
    meat = D.T @ W @ Omega @ W @ D
    return (1.0 + 1.0 / n_sim) * bread @ meat @ bread


def j_test(est: Estimate, Omega: np.ndarray, W: np.ndarray, n_sim: int, d: int) -> tuple[float, int, float]:
    """Hansen's J for the overidentifying moments: statistic, df and p-value."""
    live = np.diag(W) > 0
    sd = np.sqrt(np.diag(Omega)[live])
    ev = np.linalg.eigvalsh(Omega[np.ix_(live, live)] / np.outer(sd, sd))
    rank = int(np.sum(ev > 1e-10 * max(float(ev[-1]), 1e-300)))  # collinear statistics count once
    df = rank - d
    if df <= 0:
        return 0.0, 0, math.nan
    r = est.residual[live]
    J = float(r @ np.linalg.pinv((1.0 + 1.0 / n_sim) * Omega[np.ix_(live, live)], hermitian=True) @ r)
    from scipy.stats import chi2

    return J, df, float(chi2.sf(J, df))
