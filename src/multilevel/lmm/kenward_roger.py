"""Kenward-Roger: the adjusted covariance of beta, the scaled F test and its df.

Kenward & Roger (1997), as pbkrtest computes them (Halekoh & Højsgaard 2014), with
the covariance in its linear parameters ``V = sum_i s_i G_i`` (so the second-derivative
terms ``R_ij`` vanish):

    I_ij = K_ij - 2 tr(Phi Q_ij) + tr(Phi P_i Phi P_j),     W = 2 I^{-1}
    Phi_A = Phi + 2 Phi [sum_ij W_ij (Q_ij - P_i Phi P_j)] Phi

where ``Phi = vcov(beta)`` and ``P``, ``Q``, ``K`` come from the blocked factor
(:func:`multilevel.lmm.kr_products.kr_products`, no n x n matrix). For a hypothesis
``L beta = L beta_0`` of rank q, with ``Theta = L'(L Phi L')^{-1} L`` and
``u_i = Theta Phi P_i Phi``, ``A1 = sum W_ij tr(u_i) tr(u_j)``, ``A2 = sum W_ij tr(u_i u_j)``
give the approximate F's scale and its denominator df ``m = 4 + (q + 2)/(q rho - 1)``;
the statistic is ``F = lambda (L b)'(L Phi_A L')^{-1}(L b) / q``.

Kenward-Roger is defined at the REML estimates; :func:`kr_adjustment` refuses ML fits
(as lmerTest) and :func:`kr_modcomp` refits an ML model by REML (as pbkrtest).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelError
from ..optim.optimize import bobyqa
from .ftest import FTest, empty_test, make_test
from .kr_products import KrProducts, kr_products
from .objective import Factor, LmmObjective
from .solution import solve, vcov_beta


@dataclass(frozen=True)
class KrAdjustment:
    """pbkrtest's ``vcovAdj``: the unadjusted and adjusted covariance of beta, ``P_i`` and ``W``."""

    vcov: np.ndarray  # Phi
    vcov_adjusted: np.ndarray  # Phi_A
    P: np.ndarray  # (g, p, p)
    W: np.ndarray  # (g, g): 2 x inverse expected information of the covariance parameters
    condition: float  # smallest |eigenvalue| of the information


def adjusted_vcov(products: KrProducts, Phi: np.ndarray) -> KrAdjustment:
    """``Phi_A`` and ``W`` from the products (pbkrtest's ``vcovAdj16_internal``).

    Examples
    --------
    >>> import multilevel
    >>> from multilevel.lmm.kr_products import kr_products
    >>> m = multilevel.fit("Yield ~ 1 + (1 | Batch)", multilevel.load_dataset("Dyestuff"))
    >>> adj = adjusted_vcov(kr_products(m.objective, m.factor, m.sigma), m.vcov.to_numpy())
    >>> adj.W.shape
    (2, 2)
    """
    P, Q, K = products.P, products.Q, products.K
    g = P.shape[0]
    PhiP = np.array([Phi @ Pi for Pi in P])
    info = np.empty((g, g))
    for i in range(g):
        for j in range(i, g):
            info[i, j] = info[j, i] = (
                K[i, j] - 2.0 * float(np.sum(Phi * Q[i, j])) + float(np.sum(PhiP[i] * PhiP[j].T))
            )
    condition = float(np.min(np.abs(np.linalg.eigvalsh(info))))
    W = 2.0 * (np.linalg.inv(info) if condition > 1e-10 else np.linalg.pinv(info))
    W = 0.5 * (W + W.T)
    UU = np.zeros_like(Phi)
    for i in range(g):
        for j in range(i + 1, g):
            UU += W[i, j] * (Q[i, j] - P[i] @ Phi @ P[j])
    UU = UU + UU.T
    for i in range(g):
        UU += W[i, i] * (Q[i, i] - P[i] @ Phi @ P[i])
    PhiA = Phi + 2.0 * Phi @ UU @ Phi
    return KrAdjustment(Phi, PhiA, P, W, condition)


def kr_adjustment(obj: LmmObjective, f: Factor, sigma: float) -> KrAdjustment:
    """Kenward-Roger's adjusted covariance of beta at a REML fit's (theta, sigma).

    Examples
    --------
    >>> import multilevel
    >>> m = multilevel.fit("Reaction ~ Days + (Days | Subject)", multilevel.load_dataset("sleepstudy"))
    >>> adj = kr_adjustment(m.objective, m.factor, m.sigma)
    >>> bool(np.all(np.diag(adj.vcov_adjusted) >= np.diag(adj.vcov) * (1 - 1e-12)))  # up to rounding
    True
    """
    if not obj.reml:
        raise ModelError(
            "Kenward-Roger's method is defined at REML estimates; refit with reml=True "
            "(or use ddf='satterthwaite')"
        )
    return adjusted_vcov(kr_products(obj, f, sigma), vcov_beta(obj, f, sigma))


@dataclass(frozen=True)
class KrDdf:
    """Kenward-Roger's df ``m``, F scale ``lambda`` and the auxiliary A1, A2, rho."""

    rank: int
    ddf: float
    scale: float
    A1: float
    A2: float
    rho: float


def _div_zero(x: float, y: float, tol: float = 1e-14) -> float:
    return 1.0 if abs(x) < tol and abs(y) < tol else x / y


def kr_ddf(L: np.ndarray, adj: KrAdjustment) -> KrDdf:
    """pbkrtest's ``Lb_ddf`` / ``.KR_adjust``: df and scale of the test of ``L`` (full row rank).

    Examples
    --------
    >>> import multilevel
    >>> m = multilevel.fit("Yield ~ 1 + (1 | Batch)", multilevel.load_dataset("Dyestuff"))
    >>> round(kr_ddf(np.ones((1, 1)), kr_adjustment(m.objective, m.factor, m.sigma)).ddf, 3)
    5.0
    """
    Phi = adj.vcov
    q = int(np.linalg.matrix_rank(L))
    Theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
    TP = Theta @ Phi
    u = [TP @ Pi @ Phi for Pi in adj.P]
    tr = np.array([np.trace(ui) for ui in u])
    W = adj.W
    A1 = float(tr @ W @ tr)
    A2 = float(sum(W[i, j] * np.sum(u[i] * u[j].T) for i in range(len(u)) for j in range(len(u))))
    B = (A1 + 6.0 * A2) / (2.0 * q)
    g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    den = 3.0 * q + 2.0 * (1.0 - g)
    c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
    V0 = 1.0 + c1 * B
    V0 = 0.0 if abs(V0) < 1e-10 else V0
    V1, V2 = 1.0 - c2 * B, 1.0 - c3 * B
    rho = _div_zero(1.0 - A2 / q, V1) ** 2 * V0 / V2 / q
    ddf = 4.0 + (q + 2.0) / (q * rho - 1.0)
    scale = 1.0 if abs(ddf - 2.0) < 1e-2 else ddf * (1.0 - A2 / q) / (ddf - 2.0)
    return KrDdf(q, float(ddf), float(scale), A1, A2, float(rho))


def row_basis(L: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """An orthonormal basis of the rows of ``L`` (Kenward-Roger does not depend on the basis).

    Examples
    --------
    >>> row_basis(np.array([[1.0, 0.0], [2.0, 0.0]])).shape
    (1, 2)
    """
    if L.shape[0] == 0:
        return L
    _, s, Vt = np.linalg.svd(L, full_matrices=False)
    keep = s > tol * max(s[0], 1e-300)
    return Vt[keep]


def kr_test(
    L: np.ndarray, beta: np.ndarray, adj: KrAdjustment, sigma: float, rhs: np.ndarray | None = None
) -> FTest:
    """Kenward-Roger's F test of ``L beta = rhs`` (lmerTest's ``anova(ddf = "Kenward-Roger")``).

    Examples
    --------
    >>> import multilevel
    >>> m = multilevel.fit("Reaction ~ Days + (Days | Subject)", multilevel.load_dataset("sleepstudy"))
    >>> adj = kr_adjustment(m.objective, m.factor, m.sigma)
    >>> round(kr_test(np.array([[0.0, 1.0]]), m.fixef.to_numpy(), adj, m.sigma).den_df, 3)
    17.0
    """
    method = "kenward-roger"
    if L.shape[0] == 0:
        return empty_test(method)
    rhs_v = np.zeros(L.shape[0]) if rhs is None else np.broadcast_to(np.asarray(rhs, float), (L.shape[0],))
    beta_h = np.linalg.pinv(L) @ rhs_v if np.any(rhs_v != 0) else np.zeros_like(beta)
    Lb = row_basis(L)
    if Lb.shape[0] == 0:
        return empty_test(method)
    d = kr_ddf(Lb, adj)
    diff = Lb @ (beta - beta_h)
    wald = float(diff @ np.linalg.solve(Lb @ adj.vcov_adjusted @ Lb.T, diff))
    return make_test(wald / d.rank, d.rank, d.ddf, sigma, method, d.scale)


def restriction_matrix(X_large: np.ndarray, X_small: np.ndarray, tol: float = 1e-9) -> np.ndarray:
    """Rows ``L`` with ``L beta = 0`` exactly when ``X_large beta`` lies in the small model's
    column space (pbkrtest's ``make_restriction_matrix``, up to the rows' basis).

    Examples
    --------
    >>> X = np.column_stack([np.ones(6), np.arange(6.0), np.arange(6.0) ** 2])
    >>> restriction_matrix(X, X[:, :2]).shape
    (1, 3)
    """
    if X_large.shape[0] != X_small.shape[0]:
        raise ModelError(
            f"the models were fitted to different rows ({X_large.shape[0]} and {X_small.shape[0]}); "
            "compare models fitted to the same data"
        )
    Q2, R2 = np.linalg.qr(X_small) if X_small.shape[1] else (np.zeros((X_large.shape[0], 0)), None)
    if R2 is not None:
        Q2 = Q2[:, np.abs(np.diag(R2)) > tol * max(np.abs(np.diag(R2)).max(), 1e-300)]
    resid = X_large - Q2 @ (Q2.T @ X_large)
    small_resid = X_small - X_large @ np.linalg.lstsq(X_large, X_small, rcond=None)[0]
    if float(np.linalg.norm(small_resid)) > 1e-7 * max(float(np.linalg.norm(X_small)), 1.0):
        raise ModelError(
            "the smaller model's fixed effects are not nested in the larger model's: its design "
            "is not in the larger design's column space"
        )
    M = resid.T @ resid
    vals, vecs = np.linalg.eigh(0.5 * (M + M.T))
    scale = float(np.max(np.sum(X_large**2, axis=0))) if X_large.size else 1.0
    keep = vals > tol * (scale if scale > 0 else 1e-300)
    return vecs[:, keep].T


def kr_modcomp(large: Any, small: Any) -> FTest:
    """pbkrtest's ``KRmodcomp(large, small)``: Kenward-Roger's F test of the fixed effects the
    smaller model drops. An ML fit of the larger model is refitted by REML first, as pbkrtest does.

    Examples
    --------
    >>> import multilevel
    >>> d = multilevel.load_dataset("dietox")
    >>> big = multilevel.fit("Weight ~ Time + Cu + (1 | Pig)", d)
    >>> small = multilevel.fit("Weight ~ Time + (1 | Pig)", d)
    >>> t = kr_modcomp(big, small)
    >>> t.num_df, round(t.den_df, 2)
    (2, 69.0)
    """
    if small.design.X.shape[1] >= large.design.X.shape[1]:
        large, small = small, large
    L = restriction_matrix(large.design.X, small.design.X)
    if L.shape[0] == 0:
        raise ModelError("the two models have the same fixed-effect column space: there is nothing to test")
    if large.reml:
        obj, f, sigma, beta = large.objective, large.factor, large.sigma, large.solution.beta
    else:
        obj, f = _reml_factor(large)
        sigma, beta = obj.sigma(f), solve(obj, f).beta
    return kr_test(L, beta, kr_adjustment(obj, f, sigma), sigma)


def _reml_factor(fit: Any) -> tuple[LmmObjective, Factor]:
    """The REML optimum of an ML fit's model (pbkrtest refits ML models by REML)."""
    obj = LmmObjective(fit.spec, fit.objective.cp, reml=True, pattern=fit.objective.pattern)
    lower = fit.spec.theta_map.lower_bounds
    x0 = np.asarray(fit.theta, dtype=float)
    theta = bobyqa(obj, x0, lower, initial_step=0.1 * np.maximum(np.abs(x0), 0.1))[0]
    theta = np.where(np.isfinite(lower), np.maximum(theta, lower), theta)
    return obj, obj.factor(theta)
