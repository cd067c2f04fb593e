"""GEE estimation (Liang & Zeger 1986) as geepack does it.

Fisher scoring for beta with ``V_i = phi A_i^{1/2} R_i(alpha) A_i^{1/2}``; between
steps the scale ``phi = sum r^2 / N`` and alpha are re-estimated from the
Pearson residuals ``r``. Starts from the independence (GLM) solution.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConvergenceWarning, warn
from ..family import Family
from ..optim.optimize import seconds_left
from .correlation import WorkingCorrelation


@dataclass(frozen=True)
class Clusters:
    """Row indices of each cluster (rows already in cluster order) and time positions."""

    starts: np.ndarray  # (K + 1,) offsets into the sorted rows
    times: list[np.ndarray]  # per cluster: integer time positions

    @property
    def K(self) -> int:
        return int(self.starts.size - 1)

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.starts)

    def slices(self) -> list[slice]:
        return [slice(int(a), int(b)) for a, b in zip(self.starts[:-1], self.starts[1:])]


@dataclass(frozen=True)
class GeeEstimate:
    beta: np.ndarray
    alpha: np.ndarray
    phi: float
    mu: np.ndarray
    eta: np.ndarray
    iterations: int
    converged: bool


def _pearson(y: np.ndarray, mu: np.ndarray, w: np.ndarray, fam: Family) -> np.ndarray:
    return (y - mu) * np.sqrt(w / fam.variance(mu, 1.0))


def gee_fit(
    y: np.ndarray,
    X: np.ndarray,
    w: np.ndarray,
    offset: np.ndarray,
    clusters: Clusters,
    fam: Family,
    corr: WorkingCorrelation,
    *,
    tol: float = 1e-10,
    maxit: int = 100,
) -> GeeEstimate:
    link = fam.link
    N, p = X.shape
    # independence start: IRLS for the GLM
    mu = fam.mustart(y, w)
    eta = link.link(mu)
    beta = np.zeros(p)
    for _ in range(50):
        mu_eta = link.mu_eta(eta)
        W = w * mu_eta**2 / fam.variance(mu, 1.0)
        z = eta - offset + (y - mu) / mu_eta
        XtW = X.T * W
        beta_new = np.linalg.solve(XtW @ X, XtW @ z)
        eta = offset + X @ beta_new
        mu = link.inverse(eta)
        done = np.max(np.abs(beta_new - beta)) < 1e-12 * (1 + np.max(np.abs(beta_new)))
        beta = beta_new
        if done:
            break
    slices = clusters.slices()
    converged = False
    it = 0
    phi = 1.0
    while it < maxit:
        it += 1
        r = _pearson(y, mu, w, fam)
        phi = float(r @ r) / N
        corr.alpha = corr.estimate([r[s] for s in slices], clusters.times, phi, p)
        mu_eta = link.mu_eta(eta)
        sd = np.sqrt(fam.variance(mu, 1.0) / w)
        B = np.zeros((p, p))
        U = np.zeros(p)
        for s, t in zip(slices, clusters.times):
            D = mu_eta[s, None] * X[s]
            R = corr.matrix(t)
            V = phi * sd[s, None] * R * sd[s][None, :]
            VinvD = np.linalg.solve(V, np.column_stack([D, y[s] - mu[s]]))
            B += D.T @ VinvD[:, :p]
            U += D.T @ VinvD[:, p]
        step = np.linalg.solve(B, U)
        beta = beta + step
        eta = offset + X @ beta
        mu = link.inverse(eta)
        if np.max(np.abs(step)) < tol * (1 + np.max(np.abs(beta))):
            converged = True
            break
        left = seconds_left()
        if left is not None and left <= 0:
            break
    if converged:
        # scale and alpha at the final beta (geepack reports these)
        r = _pearson(y, mu, w, fam)
        phi = float(r @ r) / N
        corr.alpha = corr.estimate([r[s] for s in slices], clusters.times, phi, p)
    else:
        stopped = f"{it} iterations (the time limit)" if it < maxit else f"{maxit} iterations"
        warn(
            f"GEE did not converge in {stopped}; the estimates are where it stopped. Try fewer "
            "predictors, the canonical link or corstr='independence'",
            ConvergenceWarning,
        )
    return GeeEstimate(beta, corr.alpha.copy(), phi, mu, eta, it, converged)
