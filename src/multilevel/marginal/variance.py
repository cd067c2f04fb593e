"""Standard errors of GEE estimates: model-based, robust and small-sample corrected.

With ``B = sum_i D_i' V_i^{-1} D_i``, cluster score ``U_i = D_i' V_i^{-1} e_i`` and
cluster leverage ``H_i = D_i B^{-1} D_i' V_i^{-1}``:

* model: ``B^{-1}``
* robust (CR0, Liang-Zeger): ``B^{-1} (sum U_i U_i') B^{-1}``
* MD (Mancl & DeRouen 2001): residuals ``(I - H_i)^{-1} e_i``
* KC (Kauermann & Carroll 2001): residuals ``(I - H_i)^{-1/2} e_i`` (principal root)
* FG (Fay & Graubard 2001): ``U_i`` scaled by ``diag{(1 - min(b, [Q_i]_jj))^{-1/2}}``,
  ``Q_i = D_i' V_i^{-1} D_i B^{-1}``, b = 0.75
* jackknife: leave-one-cluster-out one-step estimates,
  ``(K - p)/K sum (beta_(-i) - beta)(beta_(-i) - beta)'``
"""

from __future__ import annotations

import numpy as np

from ..family import Family
from .correlation import WorkingCorrelation
from .estimate import Clusters, GeeEstimate

METHODS = ("model", "robust", "md", "kc", "fg", "jackknife")
FG_B = 0.75


LEVERAGE_FLOOR = 1e-10


def _sym_sqrt(V: np.ndarray, power: float) -> np.ndarray:
    """Symmetric power of a symmetric positive (semi)definite matrix.

    Eigenvalues are floored at ``LEVERAGE_FLOOR``: with very few clusters a
    cluster's leverage can reach 1 to rounding, where ``I - H`` loses rank.
    """
    lam, Q = np.linalg.eigh(V)
    return (Q * np.maximum(lam, LEVERAGE_FLOOR) ** power) @ Q.T


def covariances(
    X: np.ndarray,
    y: np.ndarray,
    w: np.ndarray,
    clusters: Clusters,
    fam: Family,
    corr: WorkingCorrelation,
    est: GeeEstimate,
) -> dict[str, np.ndarray]:
    """Covariance matrix of beta by every method in :data:`METHODS`."""
    p = X.shape[1]
    K = clusters.K
    mu, eta, phi = est.mu, est.eta, est.phi
    corr.alpha = est.alpha
    mu_eta = fam.link.mu_eta(eta)
    sd = np.sqrt(fam.variance(mu, 1.0) / w)
    e = y - mu
    parts = []
    B = np.zeros((p, p))
    for s, t in zip(clusters.slices(), clusters.times):
        D = mu_eta[s, None] * X[s]
        V = phi * sd[s, None] * corr.matrix(t) * sd[s][None, :]
        Vinv = np.linalg.inv(V)
        Vinv = 0.5 * (Vinv + Vinv.T)
        B += D.T @ Vinv @ D
        parts.append((D, V, Vinv, e[s]))
    Binv = np.linalg.inv(B)
    meats = {m: np.zeros((p, p)) for m in ("robust", "md", "kc", "fg")}
    jack = np.zeros((p, p))
    for D, V, Vinv, ei in parts:
        n = ei.size
        DtVinv = D.T @ Vinv
        Omega = DtVinv @ D
        U = DtVinv @ ei
        meats["robust"] += np.outer(U, U)
        H = D @ Binv @ DtVinv  # n x n cluster leverage
        I = np.eye(n)
        u_md = DtVinv @ np.linalg.solve(I - H, ei)
        meats["md"] += np.outer(u_md, u_md)
        # principal (I - H)^{-1/2} through the symmetric similar matrix
        Vh = _sym_sqrt(V, 0.5)
        Vmh = _sym_sqrt(V, -0.5)
        S = Vmh @ D @ Binv @ D.T @ Vmh
        S = 0.5 * (S + S.T)
        root = Vh @ _sym_sqrt(I - S, -0.5) @ Vmh
        u_kc = DtVinv @ (root @ ei)
        meats["kc"] += np.outer(u_kc, u_kc)
        Q = Omega @ Binv
        h = 1.0 / np.sqrt(1.0 - np.minimum(FG_B, np.diag(Q)))
        u_fg = h * U
        meats["fg"] += np.outer(u_fg, u_fg)
        delta = np.linalg.solve(B - Omega, U)  # one-step leave-cluster-out change
        jack += np.outer(delta, delta)
    out = {"model": Binv}
    for m, meat in meats.items():
        out[m] = Binv @ meat @ Binv
    out["jackknife"] = (K - p) / K * jack
    return out
