"""The Gaussian criteria from a blocked factor, written once for both backends.

With ``nu = n - p`` for REML and ``n`` for ML, and ``sum(log w)`` of the prior
weights (Bates et al. 2015, eqs. 34 and 41):

* profiled deviance: ``log|L_Z|^2 [+ log|L_XX|^2] + nu (1 + log(2 pi r2 / nu)) - sum log w``;
* deviance at a given sigma (beta profiled): ``log|L_Z|^2 [+ log|L_XX|^2] +
  r2 / sigma^2 + nu log(2 pi sigma^2) - sum log w`` (lmerTest's ``devfun_vp``);
* marginal log-likelihood at ``(beta, sigma)``: ``-1/2 [n log(2 pi sigma^2) -
  sum log w + log|L_Z|^2 + r2(beta) / sigma^2]``, ``r2(beta)`` from the bordered
  factor (:func:`r2_at`).

``xp`` only needs ``log``: the NumPy backend passes :mod:`math` (its factor's
scalars are Python floats, and ``numpy.log`` of a scalar costs more than the
rest of this arithmetic), the JAX backend ``jax.numpy``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .factor import Factor

LOG_2PI = math.log(2 * math.pi)


def profiled_deviance(xp: Any, f: Factor, n: float, p: int, sum_log_weights: float, reml: bool) -> Any:
    """REML criterion (``reml``) or -2 log-likelihood, sigma and beta profiled out."""
    nu = n - p if reml else n
    dev = f.logdet_z + nu * (1.0 + LOG_2PI + xp.log(f.r2 / nu)) - sum_log_weights
    return dev + f.logdet_x if reml else dev


def deviance_at(xp: Any, f: Factor, sigma: Any, n: float, p: int, sum_log_weights: float, reml: bool) -> Any:
    """REML criterion or -2 log-likelihood at a given residual SD, beta profiled out."""
    s2 = sigma * sigma
    nu = n - p if reml else n
    dev = f.logdet_z + f.r2 / s2 + nu * (LOG_2PI + xp.log(s2)) - sum_log_weights
    return dev + f.logdet_x if reml else dev


def r2_at(f: Factor, beta: Any, mz: int, p: int) -> Any:
    """Penalized residual sum of squares at ``beta`` (the random effects at their
    conditional mode): ``r2 + |c_X - L_XX' beta|^2``."""
    if p == 0:
        return f.r2
    LS = f.LS
    # the lower triangle only: the NumPy factor leaves the upper one unspecified
    LXX = LS[mz : mz + p, mz : mz + p] * np.tri(p)
    d = LS[-1, mz : mz + p] - LXX.T @ beta
    return f.r2 + d @ d


def marginal_loglik(
    xp: Any, f: Factor, beta: Any, sigma: Any, n: float, sum_log_weights: float, mz: int, p: int
) -> Any:
    """Log-likelihood at ``(beta, sigma)`` with the random effects integrated out."""
    s2 = sigma * sigma
    return -0.5 * (n * (LOG_2PI + xp.log(s2)) - sum_log_weights + f.logdet_z + r2_at(f, beta, mz, p) / s2)
