"""Expected mean squares, method-of-moments variance components, Satterthwaite intervals.

Each stratum's residual mean square has expectation ``sum_k c_sk sigma2_k`` with
``c_sk = tr(R_s Z_k Z_k') / df_s`` (``R_s`` the stratum's residual projector, ``Z_k``
the cell indicators of error term ``k``; the residual component has ``Z = I``).
Setting the expectations to the observed mean squares and solving gives the moment
(ANOVA) estimates, each a linear combination ``sum_s a_ks MS_s``; Satterthwaite's
approximation treats ``nu sigma2_k / sigma2_k`` as chi-square on
``nu = (sum_s a_ks MS_s)^2 / sum_s (a_ks MS_s)^2 / df_s`` degrees of freedom.

>>> C = np.array([[5.0, 1.0], [0.0, 1.0]])
>>> est, A = moment_estimates(C, np.array([8.0, 3.0]))
>>> [float(v) for v in est]
[1.0, 3.0]
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special


def moment_estimates(coef: np.ndarray, ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``coef @ sigma2 = ms`` (strata by components) for the variance components.

    Returns the estimates and ``A`` (components by strata) with ``sigma2 = A @ ms``. A
    square, nonsingular system is solved exactly. With fewer independent equations than
    components (a stratum without residual df), a component is estimated only where the
    equations determine it (its unit vector lies in the row space of ``coef``); the
    others are NaN, with NaN rows of ``A``.
    """
    if coef.shape[0] == coef.shape[1] and np.linalg.matrix_rank(coef) == coef.shape[0]:
        A = np.linalg.inv(coef)
        return A @ ms, A
    A = np.linalg.pinv(coef)
    # e_k in the row space of coef  <=>  (pinv(coef) coef) e_k = e_k
    determined = np.all(np.abs(A @ coef - np.eye(coef.shape[1])) < 1e-9, axis=1)
    A[~determined] = np.nan
    return A @ ms, A


def satterthwaite(
    a: np.ndarray, ms: np.ndarray, df: np.ndarray, level: float = 0.95
) -> tuple[float, float, float]:
    """Satterthwaite's df and interval for ``sigma2 = a @ ms`` (mean squares ``ms`` on ``df``).

    The interval is ``[nu s2 / chi2_{nu, 1 - alpha/2}, nu s2 / chi2_{nu, alpha/2}]``. An
    estimate that is not positive has no such interval: df and bounds are NaN. At a
    tiny ``nu`` (an estimate near 0 against large mean squares, nu below ~0.06) the
    chi-square's upper 2.5% point is under its mean and the interval misses the
    estimate: the approximation has nothing to say there.

    >>> nu, lo, hi = satterthwaite(np.array([1.0]), np.array([2.0]), np.array([10.0]))
    >>> round(nu, 6), round(lo, 4), round(hi, 4)
    (10.0, 0.9764, 6.1596)
    """
    est = float(a @ ms)
    if math.isnan(est):
        return math.nan, math.nan, math.nan
    terms = (a * ms) ** 2 / df
    denom = float(np.sum(terms[a != 0]))
    if not est > 0 or not denom > 0:
        return math.nan, math.nan, math.nan
    nu = est * est / denom
    alpha = 1.0 - level
    upper_q = float(special.chdtri(nu, alpha / 2.0))  # P(X > q) = alpha / 2
    lower_q = float(special.chdtri(nu, 1.0 - alpha / 2.0))
    # a tiny nu puts the quantiles at 0 in float64: the upper bound is then unbounded,
    # and where even the upper quantile underflows the interval is undefined
    lower = nu * est / upper_q if upper_q > 0 else math.nan
    return nu, lower, nu * est / lower_q if lower_q > 0 else math.inf
