"""Efron's g-modeling: a smooth exponential-family prior, by penalized maximum likelihood.

The prior on a grid ``theta_1 .. theta_m`` is ``g(alpha) = exp(Q alpha) / sum exp(Q alpha)``
with ``Q`` a natural cubic spline basis of the grid (``df`` columns, centred and
scaled), so that a handful of parameters describe a smooth density (Efron 2016,
"Empirical Bayes deconvolution estimates", Biometrika; R's ``deconvolveR``). With
``P[i, j] = p(y_i | theta_j)`` the marginal of observation i is
``f_i = sum_j P[i, j] g_j`` and the estimate maximizes

    l(alpha) - c0 ||alpha||,     l(alpha) = sum_i w_i log f_i

(the penalty keeps the prior from chasing single observations). The score is
``sum_i w_i Q'(post_i - g)`` with ``post_i`` the posterior of observation i on
the grid; the Hessian is analytic, so Newton's method with a line search reaches
the optimum to machine precision.

Accuracy by the delta method (Efron's Theorem 1): with ``I`` the observed
information of ``l`` (the sum of the per-observation score outer products) and
``H = -d^2 l - d^2 s`` the curvature of the penalized criterion,
``cov(alpha) = H^-1 I H^-1`` and ``bias(alpha) = -H^-1 ds``; the prior's
covariance and bias follow through ``dg/dalpha = (diag(g) - g g') Q``, and those
of any linear functional of the posterior (posterior means, tail probabilities)
the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelError
from .data import make_grid, prepare_data
from .kernels import get_kernel


def natural_spline_basis(x: np.ndarray, df: int) -> np.ndarray:
    """A natural cubic spline basis (len(x), df) with interior knots at quantiles of x
    (boundary knots at its ends), columns centred and scaled to unit norm."""
    x = np.asarray(x, dtype=float)
    lo, hi = float(x.min()), float(x.max())
    knots = np.quantile(x, np.linspace(0, 1, df + 1))
    knots[0], knots[-1] = lo, hi

    def d(k: int) -> np.ndarray:  # the truncated cubic differences of the natural basis
        return (np.maximum(x - knots[k], 0) ** 3 - np.maximum(x - knots[-1], 0) ** 3) / (knots[-1] - knots[k])

    cols = [x] + [d(k) - d(len(knots) - 2) for k in range(len(knots) - 2)]
    B = np.column_stack(cols)
    B = B - B.mean(axis=0)
    norms = np.linalg.norm(B, axis=0)
    return B / np.where(norms > 0, norms, 1.0)


@dataclass(frozen=True)
class GModel:
    """The fitted g-model: the grid, the prior ``g`` with its delta-method SE and bias,
    ``alpha`` and its covariance, the penalized and plain log-likelihoods, and the data
    it needs for posterior quantities."""

    grid: np.ndarray
    g: np.ndarray
    g_se: np.ndarray
    g_bias: np.ndarray
    alpha: np.ndarray
    alpha_cov: np.ndarray
    loglik: float
    penalized: float
    c0: float
    iterations: int
    converged: bool
    Q: np.ndarray
    P: np.ndarray
    w: np.ndarray
    H_inv: np.ndarray
    penalty_grad: np.ndarray
    inverse: np.ndarray | None = None  # each observation's row of P (equal observations share one)
    group_effects: Any = None  # the fit's group effects, when deconvolve() was given a fit

    def _rows(self, values: np.ndarray) -> np.ndarray:
        """Per-row values (of the distinct rows of P) for every observation."""
        return values if self.inverse is None else values[self.inverse]

    def posterior(self) -> np.ndarray:
        """Posterior of every observation on the grid (n, m)."""
        joint = self.P * self.g
        return self._rows(joint / joint.sum(axis=1, keepdims=True))

    def posterior_mean(self) -> np.ndarray:
        """E[theta | y_i] under the fitted prior."""
        return self.posterior() @ self.grid

    def posterior_mean_se(self) -> np.ndarray:
        """The delta-method SE of each posterior mean (through alpha; Efron's Theorem 1)."""
        joint = self.P * self.g
        mean = (joint @ self.grid) / joint.sum(axis=1)
        # mean_i = sum_j P_ij g_j theta_j / f_i with f_i = sum_j P_ij g_j, g = g(alpha)
        dg = (np.diag(self.g) - np.outer(self.g, self.g)) @ self.Q  # dg / dalpha (m, k)
        f = self.P @ self.g
        dnum = (self.P * self.grid) @ dg  # (n, k)
        dden = self.P @ dg
        grad = (dnum - mean[:, None] * dden) / f[:, None]
        return self._rows(np.sqrt(np.einsum("ik,kl,il->i", grad, self.alpha_cov, grad)))


def gmodel(
    y: Any,
    *,
    family: str = "gaussian",
    se: Any = None,
    trials: Any = None,
    grid: Any = None,
    df: int = 5,
    c0: float = 1.0,
    weights: Any = None,
    max_iter: int = 100,
) -> GModel:
    """Fit Efron's g-model prior to ``y``; see the module docstring.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> theta = np.where(rng.random(2000) < 0.8, 0.0, rng.normal(2, 1, 2000))
    >>> m = gmodel(theta + rng.standard_normal(2000), grid=np.linspace(-3, 6, 91))
    >>> m.converged, round(float(m.g.sum()), 12)
    (True, 1.0)
    """
    kernel = get_kernel(family)
    data = prepare_data(kernel, y, se=se, trials=trials, weights=weights)
    th = make_grid(kernel, data, 101 if grid is None else grid)
    if th.size < df + 1:
        raise ModelError(f"grid must have more than df = {df} points")
    # the distinct rows, each with its count (equal observations merged, exactly)
    P = np.exp(kernel.log_density(data.rows_y, data.rows_scale, th))
    w = data.rows_weight
    Q = natural_spline_basis(th, df)
    alpha, it, conv = _newton(P, Q, w, c0, max_iter)
    return _wrap(P, Q, w, th, alpha, c0, it, conv, data.inverse)


def _parts(P: np.ndarray, Q: np.ndarray, w: np.ndarray, alpha: np.ndarray) -> tuple:
    eta = Q @ alpha
    g = np.exp(eta - eta.max())
    g /= g.sum()
    f = P @ g
    post = P * g / f[:, None]
    return g, f, post


def _objective(P: np.ndarray, Q: np.ndarray, w: np.ndarray, alpha: np.ndarray, c0: float) -> tuple:
    """Penalized log-likelihood, its gradient and Hessian (analytic)."""
    g, f, post = _parts(P, Q, w, alpha)
    norm = math.sqrt(float(alpha @ alpha))
    ll = float(w @ np.log(f))
    scores = (post - g) @ Q  # (n, k): per-observation score
    grad = w @ scores
    Sg = Q.T @ (np.diag(g) - np.outer(g, g)) @ Q
    QP = post @ Q  # (n, k)
    within = Q.T @ ((post * w[:, None]).sum(axis=0)[:, None] * Q) - QP.T @ (w[:, None] * QP)
    hess = within - w.sum() * Sg
    if norm > 0:
        pen_grad = c0 * alpha / norm
        pen_hess = c0 * (np.eye(alpha.size) - np.outer(alpha, alpha) / norm**2) / norm
    else:
        pen_grad, pen_hess = np.zeros_like(alpha), np.zeros((alpha.size, alpha.size))
    return ll - c0 * norm, ll, grad - pen_grad, hess - pen_hess, scores, pen_grad, pen_hess


def _newton(
    P: np.ndarray, Q: np.ndarray, w: np.ndarray, c0: float, max_iter: int
) -> tuple[np.ndarray, int, bool]:
    """Newton's method with a backtracking line search on the (concave) criterion.

    The penalty ``c0 ||alpha||`` has a kink at 0: where the score of the likelihood
    at 0 (the uniform prior) is no longer than ``c0``, 0 is the optimum (the
    subgradient condition); otherwise the optimum is away from 0, where the
    criterion is smooth, and Newton starts a short way along the score.
    """
    zero = np.zeros(Q.shape[1])
    g0 = _objective(P, Q, w, zero, 0.0)[2]
    if float(np.linalg.norm(g0)) <= c0:
        return zero, 0, True
    alpha = 1e-3 * g0 / np.linalg.norm(g0)
    for it in range(1, max_iter + 1):
        m_val, _, grad, hess, *_ = _objective(P, Q, w, alpha, c0)
        lam, V = np.linalg.eigh(-hess)
        step = V @ ((V.T @ grad) / np.maximum(lam, 1e-10 * max(lam.max(), 1e-300)))
        dec = float(grad @ step)
        if dec < 1e-12 * max(1.0, abs(m_val)):
            return alpha, it, True
        a = 1.0
        while a > 1e-10:
            trial = alpha + a * step
            if _objective(P, Q, w, trial, c0)[0] >= m_val + 1e-4 * a * dec:
                alpha = trial
                break
            a /= 2
        else:
            return alpha, it, dec < 1e-8 * max(1.0, abs(m_val))
    return alpha, max_iter, False


def _wrap(
    P: np.ndarray,
    Q: np.ndarray,
    w: np.ndarray,
    th: np.ndarray,
    alpha: np.ndarray,
    c0: float,
    it: int,
    conv: bool,
    inverse: np.ndarray,
) -> GModel:
    pen, ll, _, hess, scores, pen_grad, _ = _objective(P, Q, w, alpha, c0)
    info = scores.T @ (w[:, None] * scores)
    H_inv = np.linalg.pinv(-hess)
    cov = H_inv @ info @ H_inv
    bias_alpha = -H_inv @ pen_grad
    g = _parts(P, Q, w, alpha)[0]
    dg = (np.diag(g) - np.outer(g, g)) @ Q
    return GModel(
        grid=th,
        g=g,
        g_se=np.sqrt(np.maximum(np.einsum("jk,kl,jl->j", dg, cov, dg), 0.0)),
        g_bias=dg @ bias_alpha,
        alpha=alpha,
        alpha_cov=cov,
        loglik=ll,
        penalized=pen,
        c0=c0,
        iterations=it,
        converged=conv,
        Q=Q,
        P=P,
        w=w,
        H_inv=H_inv,
        penalty_grad=pen_grad,
        inverse=inverse,
    )
