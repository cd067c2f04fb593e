"""Posterior summaries of theta_i given y_i under a discrete prior (grid, weights).

The posterior of observation i puts mass P_ij = f_j p(y_i | theta_j) / fhat(y_i)
on the support atoms theta_j of the prior; everything here is a summary of
that (rows x atoms) matrix, computed in log space.
"""

from __future__ import annotations

import numpy as np
from scipy import special

from multilevel.errors import ModelError

from .kernels import Kernel

_CDF_SLACK = 1e-12


def posterior_matrix(
    kernel: Kernel, atoms: np.ndarray, mass: np.ndarray, y: np.ndarray, scale: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """P (rows x atoms) and log fhat(y_i), the log marginal density of each row."""
    logp = kernel.log_density(y, scale, atoms) + np.log(mass)[None, :]
    log_fhat = special.logsumexp(logp, axis=1)
    return np.exp(logp - log_fhat[:, None]), log_fhat


def mean_sd(P: np.ndarray, atoms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Posterior means and standard deviations."""
    mean = P @ atoms
    var = P @ atoms**2 - mean**2
    return mean, np.sqrt(np.maximum(var, 0.0))


def quantile(P: np.ndarray, atoms: np.ndarray, prob: float) -> np.ndarray:
    """The smallest atom whose posterior CDF reaches ``prob`` (the discrete quantile)."""
    cdf = np.cumsum(P, axis=1)
    idx = np.argmax(cdf >= prob - _CDF_SLACK, axis=1)
    return atoms[idx]


def interval(P: np.ndarray, atoms: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Equal-tailed posterior intervals: the (1 - level)/2 and (1 + level)/2 quantiles."""
    if not 0 < level < 1:
        raise ModelError(f"level must be strictly between 0 and 1; got {level!r}")
    alpha = 1.0 - level
    return quantile(P, atoms, alpha / 2), quantile(P, atoms, 1 - alpha / 2)


def null_width(grid: np.ndarray) -> float:
    """The default half-width of the null in :func:`lfdr`: the largest spacing of the grid."""
    return float(np.max(np.diff(grid)))


def lfdr(P: np.ndarray, atoms: np.ndarray, null: float, width: float) -> np.ndarray:
    """Posterior mass of the atoms within ``width`` of ``null``: P(|theta - null| <= width | y)."""
    near = np.abs(atoms - null) <= width * (1 + 1e-12)
    return P[:, near].sum(axis=1)


def lfsr(P: np.ndarray, atoms: np.ndarray, null: float) -> np.ndarray:
    """Local false sign rate: min(P(theta <= null | y), P(theta >= null | y))."""
    below = P[:, atoms <= null].sum(axis=1)
    above = P[:, atoms >= null].sum(axis=1)
    return np.minimum(below, above)
