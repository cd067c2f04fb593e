"""Parametric empirical Bayes, the baselines of deconvolution: James-Stein, normal-normal
and gamma-Poisson.

* ``james_stein(y, sigma)``: the positive-part rule toward the grand mean,
  ``ybar + (1 - (n - 3) sigma^2 / S)_+ (y - ybar)`` with ``S = sum (y - ybar)^2``.
* ``normal_normal(y, se, method)``: prior ``N(mu, tau^2)`` for ``y_i ~ N(theta_i, s_i^2)``,
  by moments (``mu = ybar``, ``tau^2 = max(0, var(y) - mean(s^2))``, var on n - 1) or by
  marginal maximum likelihood (mu the precision-weighted mean given tau^2, tau^2 by
  Brent's method on the profiled likelihood); posterior means
  ``mu + B_i (y_i - mu)`` with ``B_i = tau^2 / (tau^2 + s_i^2)`` and posterior SDs
  ``sqrt(B_i) s_i``. It is the mixed model ``y | se(s) ~ 1 + (1 | g)`` with one
  observation per group, fitted by ML.
* ``gamma_poisson(x)``: prior ``Gamma(shape, rate)`` by moments (``rate = mean /
  (var - mean)``); posterior means ``(x + shape) / (1 + rate)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DataError, ModelError


@dataclass(frozen=True)
class ParametricEB:
    """A parametric prior and the posterior of every observation under it."""

    rule: str
    params: dict[str, float]
    posterior_mean: np.ndarray
    posterior_sd: np.ndarray | None = None


def _vector(y: Any, what: str = "y") -> np.ndarray:
    v = np.asarray(y, dtype=float).ravel()
    if v.size < 3 or not np.all(np.isfinite(v)):
        raise DataError(f"{what} must be three or more finite numbers")
    return v


def james_stein(y: Any, sigma: float = 1.0) -> ParametricEB:
    """Positive-part James-Stein estimates toward the grand mean (equal, known SD ``sigma``).

    >>> round(float(james_stein([0.0, 1.0, 2.0, 7.0]).params["shrink"]), 4)
    0.9655
    """
    v = _vector(y)
    if not (isinstance(sigma, (int, float)) and sigma > 0):
        raise DataError("sigma must be one positive number (for unequal SEs use normal_normal)")
    ybar = float(v.mean())
    S = float(np.sum((v - ybar) ** 2))
    shrink = max(0.0, 1.0 - (v.size - 3) * sigma**2 / S) if S > 0 else 0.0
    return ParametricEB("positive-part James-Stein toward the grand mean", {"shrink": shrink, "mean": ybar},
                        ybar + shrink * (v - ybar))  # fmt: skip


def _profiled_mu(v: np.ndarray, s2: np.ndarray, tau2: float) -> tuple[float, float]:
    """The precision-weighted mean and the -2 log marginal likelihood at tau^2."""
    var = tau2 + s2
    mu = float(np.sum(v / var) / np.sum(1 / var))
    return mu, float(np.sum(np.log(var) + (v - mu) ** 2 / var))


def _polish(v: np.ndarray, s2: np.ndarray, tau2: float) -> float:
    """Newton steps on the score of the profiled likelihood in tau^2 (Brent's method
    leaves ~1e-8 on a flat optimum; the score pins it to rounding)."""
    for _ in range(8):
        mu, _ = _profiled_mu(v, s2, tau2)
        var = tau2 + s2
        r2 = (v - mu) ** 2
        score = float(np.sum(r2 / var**2 - 1 / var))
        curv = float(np.sum(1 / var**2 - 2 * r2 / var**3))
        if curv >= 0 or tau2 <= 0:
            break
        step = -score / curv
        tau2 = max(tau2 + step, 0.0)
        if abs(step) <= 1e-15 * max(tau2, 1e-300):
            break
    return tau2


def normal_normal(y: Any, se: Any = 1.0, method: str = "ml") -> ParametricEB:
    """Normal prior by moments (``"mom"``) or marginal ML (``"ml"``); see the module docstring."""
    from scipy.optimize import minimize_scalar

    v = _vector(y)
    s = np.broadcast_to(np.asarray(se, dtype=float), v.shape).astype(float)
    if not np.all(np.isfinite(s) & (s > 0)):
        raise DataError("se must be positive and finite (one value, or one per observation)")
    s2 = s * s
    if method == "mom":
        mu = float(v.mean())
        tau2 = max(0.0, float(np.var(v, ddof=1)) - float(s2.mean()))
    elif method == "ml":
        hi = max(float(np.var(v)) * 4.0, 1e-8)
        res = minimize_scalar(lambda t: _profiled_mu(v, s2, t)[1], bounds=(0.0, hi), method="bounded",
                              options={"xatol": 1e-12 * hi})  # fmt: skip
        tau2 = _polish(v, s2, float(res.x))
        if _profiled_mu(v, s2, 0.0)[1] <= _profiled_mu(v, s2, tau2)[1]:
            tau2 = 0.0
        mu = _profiled_mu(v, s2, tau2)[0]
    else:
        raise ModelError(f"method must be 'ml' or 'mom', got {method!r}")
    B = tau2 / (tau2 + s2)
    return ParametricEB(
        f"normal-normal ({method})", {"mu": mu, "tau2": tau2}, mu + B * (v - mu), np.sqrt(B) * s
    )


def gamma_poisson(x: Any) -> ParametricEB:
    """Gamma prior for Poisson means by moments; see the module docstring."""
    v = _vector(x, "x")
    if np.any((v < 0) | (v != np.round(v))):
        raise DataError("x must be whole non-negative counts")
    m, var = float(v.mean()), float(np.var(v, ddof=1))
    if var <= m:
        raise ModelError(
            "the counts are not over-dispersed (variance <= mean): a gamma prior by moments does not "
            "exist; the Poisson means are estimated as equal"
        )
    rate = m / (var - m)
    shape = m * rate
    post = (v + shape) / (1 + rate)
    return ParametricEB("gamma-Poisson (moments)", {"shape": shape, "rate": rate}, post,
                        np.sqrt(post / (1 + rate)))  # fmt: skip
