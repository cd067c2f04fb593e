"""Satterthwaite degrees of freedom (lmerTest's method) and convergence checks.

Satterthwaite: with ``varpar = (theta, sigma)``, ``A = 2 H^{-1}`` from the Hessian
``H`` of the deviance in varpar, and ``g`` the gradient of ``Var(L'beta)`` in
varpar, ``df = 2 Var(L'beta)^2 / (g' A g)`` (Kuznetsova et al. 2017).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack

from ..errors import ConvergenceWarning, warn
from ..model.verdict import is_numerical_failure
from ..optim.optimize import SINGULAR_TOL
from .gradient import criterion_and_gradient
from .objective import LmmObjective


def satterthwaite_df(obj: LmmObjective, theta: np.ndarray, sigma: float) -> np.ndarray:
    """Denominator df of the t test of each fixed effect (lmerTest's, from the same
    derivatives as its F tests: :func:`multilevel.lmm.satterthwaite.varpar_derivatives`)."""
    from .satterthwaite import contrast_df, varpar_derivatives

    try:
        d = varpar_derivatives(obj, np.asarray(theta, dtype=float), sigma)
        return np.array([contrast_df(e, d) for e in np.eye(obj.p)])
    except Exception as exc:
        if not is_numerical_failure(exc):
            raise
    warn(
        "the Satterthwaite df need the model's matrices near the estimate, and they are singular "
        "there (a variance parameter at or near its boundary); df and p-values are NaN. Simplify "
        "the random-effects structure",
        ConvergenceWarning,
    )
    return np.full(obj.p, np.nan)


@dataclass(frozen=True)
class ConvergenceCheck:
    converged: bool
    singular: bool
    gradient: np.ndarray
    hessian: np.ndarray
    messages: tuple[str, ...]


def hessian_from_history(
    theta: np.ndarray, f0: float, g: np.ndarray, history: list[tuple[np.ndarray, float]]
) -> np.ndarray | None:
    """Hessian of a quadratic fitted to the optimizer's own evaluations near ``theta``.

    ``f(x) - f0 - g'd = d'Hd / 2`` by least squares over the nearest evaluations
    (the exact gradient is known); None when they are too few, badly placed, or
    not quadratic enough (relative residual over 10%), or indefinite, so that the
    caller falls back to finite differences. On the reference models it agrees
    with the finite-difference Hessian to 0.02-7%, plenty to scale a gradient.
    """
    k = theta.size
    n_h = k * (k + 1) // 2
    if not history:
        return None
    d = np.array([x - theta for x, _ in history])
    fv = np.array([f for _, f in history])
    rel = np.linalg.norm(d / np.maximum(np.abs(theta), 1e-2), axis=1)
    keep = np.isfinite(fv) & (rel > 1e-7) & (rel < 0.2)
    if keep.sum() < 2 * n_h:
        return None
    order = np.argsort(rel[keep])[: max(3 * n_h, 12)]
    D = d[keep][order]
    y = fv[keep][order] - f0 - D @ g
    iu = np.triu_indices(k)
    A = np.stack([D[:, a] * D[:, b] * (0.5 if a == b else 1.0) for a, b in zip(*iu)], axis=1)
    scale = np.linalg.norm(A, axis=0)
    if np.any(scale == 0):
        return None
    coef, _, rank, sv = np.linalg.lstsq(A / scale, y, rcond=None)
    if rank < n_h or sv[-1] < 1e-8 * sv[0]:
        return None
    coef = coef / scale
    if np.linalg.norm(A @ coef - y) > 0.1 * np.linalg.norm(y):
        return None
    H = np.zeros((k, k))
    H[iu] = coef
    H = H + np.triu(H, 1).T
    # an indefinite fit is more likely noise than a saddle: let finite differences decide
    return H if np.linalg.eigvalsh(H).min() > 0 else None


def check_convergence(
    obj: LmmObjective,
    theta: np.ndarray,
    lower: np.ndarray,
    tol: float = 1e-3,
    history: list[tuple[np.ndarray, float]] | None = None,
) -> ConvergenceCheck:
    """Gradient and Hessian of the profiled criterion at the optimum.

    Parameters on their lower bound are left out (a boundary optimum has a
    non-zero gradient by construction), which avoids lme4's familiar false
    alarms; the rest must have a positive-definite Hessian and a Newton step
    ``|H^{-1} g|`` below ``tol``. The gradient is analytic; the Hessian comes from
    the optimizer's evaluations near the optimum when they determine it
    (:func:`hessian_from_history`), else from forward differences of the gradient.
    """
    k = theta.size
    f0, g = criterion_and_gradient(obj, theta)
    H = hessian_from_history(theta, f0, g, history or [])
    if H is None:
        H = np.empty((k, k))
        for i in range(k):
            h = 1e-4 * max(abs(theta[i]), 1e-2)
            x = theta.copy()
            x[i] += h
            H[:, i] = (criterion_and_gradient(obj, x)[1] - g) / h
        H = 0.5 * (H + H.T)
    return convergence_verdict(theta, g, H, lower, tol)


def _newton_step(theta: np.ndarray, g: np.ndarray, H: np.ndarray, lower: np.ndarray) -> float:
    """``max |H_ff^{-1} g_f|`` over the parameters off their bound; inf where ``H_ff`` is
    not positive definite, 0 if none is free."""
    free = ~(np.isfinite(lower) & (theta <= lower + 1e-6))
    if not np.any(free):
        return 0.0
    chol, info = lapack.dpotrf(H[np.ix_(free, free)], lower=1)
    if info != 0 or not np.all(np.isfinite(chol)):
        return math.inf
    return float(np.max(np.abs(lapack.dpotrs(chol, g[free], lower=1)[0])))


def convergence_verdict(
    theta: np.ndarray,
    g: np.ndarray,
    H: np.ndarray,
    lower: np.ndarray,
    tol: float = 1e-3,
    newton_step: float | None = None,
) -> ConvergenceCheck:
    """:func:`check_convergence`'s verdict from a gradient and Hessian at ``theta``
    (``newton_step``: :func:`_newton_step`'s number, when the caller has it already)."""
    step = _newton_step(theta, g, H, lower) if newton_step is None else newton_step
    singular = bool(np.min(theta, where=np.isfinite(lower), initial=np.inf) < SINGULAR_TOL)
    messages = []
    converged = True
    if math.isinf(step):
        converged = False
        messages.append(
            "Hessian of the criterion is not positive definite at the optimum: the fit "
            "may be at a saddle point or flat ridge; rescale variables or simplify the model"
        )
    elif step > tol:
        converged = False
        messages.append(
            f"optimizer stopped with a relative gradient of {step:.2g} (> {tol:g}); the estimates "
            "may be off. Rescale variables or refit from the final theta"
        )
    if singular:
        messages.append(
            "boundary (singular) fit: a variance is estimated as 0 or a correlation as +-1; "
            "consider simplifying the random-effects structure"
        )
    return ConvergenceCheck(converged, singular, g, H, tuple(messages))
