"""The exact log-likelihood of an LMM with ``me()`` covariates and its gradient, in NumPy.

With the true covariates integrated out (:mod:`multilevel.lmm.measurement`),

    y | w ~ N(Xm beta, V),  V = ZL ZL' + diag(r),  r = sigma^2 + sum_k b_k^2 lambda_k s_k^2,

``Xm`` the design with each latent column replaced by ``m_k = mu_k + lambda_k (w_k -
mu_k)``, and ``w_k ~ N(mu_k, tau_k^2 + s_k^2)``. With ``A = R^-1 ZL`` and ``M = I + ZL'A``
(Woodbury), ``P = V^-1 e = e / r - A M^-1 A'e`` and ``V^-1 ZL = A M^-1``, every
derivative is a few products:

- ``dl/dr_i = -(diag(V^-1)_i - P_i^2) / 2``, ``diag(V^-1) = 1/r - rowsum(A M^-1 * A)``:
  through r, log sigma, the latent slopes and log tau;
- ``dl/dbeta = Xm'P`` (plus the slopes' part through r), ``dl/dm_k = b_k P``: mu and
  log tau through ``m``;
- ``dl/dZL = -A M^-1 + P (P'ZL)``, and a template entry ``T_ab`` of a grouping reads
  ``sum_i values_ia (dl/dZL)_i,level(i) b``.

Nothing is traced or compiled, so the first fit costs what the others do; a test
checks the gradient against finite differences and the value against the joint
Gaussian of ``y`` and ``w``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

LOG_2PI = math.log(2 * math.pi)


def measurement_data(model: Any) -> dict[str, Any]:
    """The arrays the log-likelihood reads, and the vector's layout."""
    d = model.design
    lay, at = [], 0
    for g in model.spec.groupings:
        lay.append((at, g.n_levels, g.q))
        at += g.n_levels * g.q
    return {
        "y": d.y,
        "X": d.X,
        "idx": [li.index for li in model.latent_info],
        "w": [a["obs"] for a in model.latent_data],
        "s": [a["sd"] for a in model.latent_data],
        "codes": [g.codes for g in d.groups],
        "values": [g.values for g in d.groups],
        "layout": lay,
        "Q": at,
        "tril": [np.tril_indices(q) for _, _, q in lay],
    }


def _unpack(x: np.ndarray, data: dict[str, Any]) -> tuple[Any, ...]:
    p, K = data["X"].shape[1], len(data["idx"])
    beta, at, Ts = x[:p], p, []
    for (r, c), (_, _, q) in zip(data["tril"], data["layout"]):
        T = np.zeros((q, q))
        T[r, c] = x[at : at + r.size]
        Ts.append(T)
        at += r.size
    return beta, Ts, x[at], x[at + 1 : at + 1 + K], x[at + 1 + K : at + 1 + 2 * K], at


def _zl(data: dict[str, Any], Ts: list[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """``Z Lambda`` dense (n, Q), and each grouping's columns per row."""
    n = data["y"].size
    ZL = np.zeros((n, data["Q"]))
    rows, places = np.arange(n)[:, None], []
    for (off, _, q), T, codes, vals in zip(data["layout"], Ts, data["codes"], data["values"]):
        cols = off + codes[:, None] * q + np.arange(q)[None, :]
        ZL[rows, cols] = vals @ T
        places.append(cols)
    return ZL, places


def loglik_and_gradient(x: np.ndarray, data: dict[str, Any]) -> tuple[float, np.ndarray]:
    """The log-likelihood at ``x = (beta, templates, log sigma, mu, log tau)`` and its
    gradient (module docstring); ``(-inf, nan)`` where V is not positive definite.

    Why this is long: the value and every term of its gradient share the Woodbury
    pieces; split, they would travel between functions as a bag of arrays.
    """
    beta, Ts, log_sigma, mu, log_tau, at = _unpack(np.asarray(x, dtype=float), data)
    y, X = data["y"], data["X"].copy()
    n = y.size
    sigma2 = math.exp(2.0 * log_sigma)
    r = np.full(n, sigma2)
    ll_w, latent = 0.0, []
    for k, j in enumerate(data["idx"]):
        w, s = data["w"][k], data["s"][k]
        t2 = math.exp(2.0 * log_tau[k])
        tot = t2 + s * s
        lam = t2 / tot
        dev = w - mu[k]
        X[:, j] = mu[k] + lam * dev
        r = r + beta[j] ** 2 * lam * s * s
        ll_w -= 0.5 * float(np.sum(LOG_2PI + np.log(tot) + dev * dev / tot))
        latent.append((j, s, t2, tot, lam, dev))
    e = y - X @ beta
    ZL, places = _zl(data, Ts)
    A = ZL / r[:, None]
    M = ZL.T @ A
    M[np.diag_indices_from(M)] += 1.0
    try:
        C = np.linalg.cholesky(M)
    except np.linalg.LinAlgError:
        return -math.inf, np.full(x.size, np.nan)
    b = A.T @ e
    Minv_b = np.linalg.solve(M, b)
    quad = float(np.sum(e * e / r) - b @ Minv_b)
    logdet = float(np.sum(np.log(r)) + 2.0 * np.sum(np.log(np.diag(C))))
    ll = ll_w - 0.5 * (n * LOG_2PI + logdet + quad)
    if not (math.isfinite(ll) and np.all(r > 0)):
        return -math.inf, np.full(x.size, np.nan)
    P = e / r - A @ Minv_b
    AMinv = np.linalg.solve(M, A.T).T  # V^-1 Z Lambda
    dl_dr = -0.5 * (1.0 / r - np.einsum("ij,ij->i", AMinv, A) - P * P)
    grad = np.zeros(x.size)
    grad[: beta.size] = X.T @ P
    K = len(latent)
    for k, (j, s, t2, tot, lam, dev) in enumerate(latent):
        grad[j] += float(np.sum(dl_dr * 2.0 * beta[j] * lam * s * s))
        dlam = 2.0 * lam * (1.0 - lam)  # d lambda / d log tau
        grad[at + 1 + k] = float(beta[j] * np.sum(P * (1.0 - lam)) + np.sum(dev / tot))
        grad[at + 1 + K + k] = float(
            beta[j] * np.sum(P * dev * dlam)
            + np.sum(dl_dr * beta[j] ** 2 * s * s * dlam)
            + np.sum(-t2 / tot + dev * dev * t2 / tot**2)
        )
    grad[at] = float(np.sum(dl_dr) * 2.0 * sigma2)
    dl_dZL = P[:, None] * (P @ ZL)[None, :] - AMinv
    rows, pos = np.arange(n)[:, None], beta.size
    for (rr, cc), cols, vals in zip(data["tril"], places, data["values"]):
        gT = vals.T @ dl_dZL[rows, cols]
        grad[pos : pos + rr.size] = gT[rr, cc]
        pos += rr.size
    return ll, grad


def loglik(x: np.ndarray, data: dict[str, Any]) -> float:
    """The log-likelihood alone."""
    return loglik_and_gradient(x, data)[0]
