"""Intracluster correlation from pilot data, with confidence intervals.

* ``anova``: the one-way ANOVA estimator ``(MSB - MSW) / (MSB + (n0 - 1) MSW)`` with
  ``n0 = (N - sum n_i^2 / N) / (k - 1)`` for unequal cluster sizes, and Searle's
  F-based interval (exact for equal sizes).
* ``reml``: the mixed-model estimator ``s_b^2 / (s_b^2 + s_e^2)`` from a REML fit of
  ``y ~ 1 + (1 | cluster)``, with a profile-likelihood interval (the REML criterion
  profiled over theta = s_b / s_e, which ICC = theta^2 / (1 + theta^2) maps monotonically).
* ``latent``: for binary outcomes, ``s_b^2 / (s_b^2 + pi^2 / 3)`` from a logistic GLMM
  (Laplace), with a Wald interval on theta from the Hessian of the deviance.

The ANOVA estimator on 0/1 data is the ICC on the proportion scale.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
from scipy import optimize, stats

from ..errors import DataError
from ..model.data import check_columns, check_finite, complete_rows, to_pandas
from ..model.groupings import factor_codes


@dataclass(frozen=True)
class IccEstimate:
    icc: float
    lower: float
    upper: float
    method: str
    n_clusters: int
    nobs: int
    level: float = 0.95
    n_missing: int = 0  # rows left out for a missing outcome or cluster

    def __str__(self) -> str:
        pct = round(100 * self.level)
        text = f"ICC ({self.method}) = {self.icc:.4f}, {pct}% CI [{self.lower:.4f}, {self.upper:.4f}]"
        if self.n_missing:
            text += f" ({self.n_missing} rows with missing values were dropped)"
        return text


def _anova(y: np.ndarray, codes: np.ndarray, level: float) -> IccEstimate:
    k = int(codes.max()) + 1
    N = y.size
    n = np.bincount(codes, minlength=k).astype(float)
    if np.any(n == 0):
        raise DataError("every cluster needs at least one observation")
    if N <= k:
        raise DataError(
            f"the ANOVA ICC needs more observations than clusters ({N} rows in {k} clusters leave no "
            "within-cluster variation); collect clusters with two or more observations"
        )
    means = np.bincount(codes, weights=y, minlength=k) / n
    grand = y.mean()
    ssb = float(np.sum(n * (means - grand) ** 2))
    ssw = float(np.sum((y - means[codes]) ** 2))
    msb = ssb / (k - 1)
    msw = ssw / (N - k)
    n0 = (N - float(np.sum(n * n)) / N) / (k - 1)
    icc = (msb - msw) / (msb + (n0 - 1) * msw)
    F = msb / msw
    a = 1 - level
    fl = F / stats.f.ppf(1 - a / 2, k - 1, N - k)
    fu = F / stats.f.ppf(a / 2, k - 1, N - k)
    lower = max((fl - 1) / (fl + n0 - 1), -1 / (n0 - 1) if n0 > 1 else -1.0)
    upper = min((fu - 1) / (fu + n0 - 1), 1.0)
    return IccEstimate(icc, lower, upper, "anova", k, N, level)


def _reml(formula: str, data: Any, level: float) -> IccEstimate:
    from ..api import Model

    model = Model(formula, data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit()
    obj = model.objective(reml=True)
    theta = float(fit.theta[0])
    crit = stats.chi2.ppf(level, 1)
    base = fit.optinfo.fval

    def excess(t: float) -> float:
        return obj(np.array([t])) - base - crit

    lower_t = 0.0
    if theta > 0 and excess(0.0) > 0:
        lower_t = optimize.brentq(excess, 0.0, theta)
    hi = max(2 * theta, 0.1)
    while excess(hi) < 0:
        hi *= 2
    upper_t = optimize.brentq(excess, theta, hi)

    def to_icc(t: float) -> float:
        return t * t / (1 + t * t)

    return IccEstimate(
        to_icc(theta),
        to_icc(lower_t),
        to_icc(upper_t),
        "reml",
        fit.ngroups[model.spec.groupings[0].name],
        fit.nobs,
        level,
    )


def _latent(formula: str, data: Any, level: float) -> IccEstimate:
    from ..api import fit as fit_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = fit_model(formula, data, family="binomial")
    theta = float(m.theta[0])
    H = m._hessian
    try:
        var_theta = float(2 * np.linalg.inv(H)[0, 0])
    except np.linalg.LinAlgError:
        var_theta = float("nan")
    z = stats.norm.ppf(0.5 + level / 2)
    se = math.sqrt(var_theta) if var_theta > 0 else float("nan")
    lo_t, hi_t = max(theta - z * se, 0.0), theta + z * se
    c = math.pi**2 / 3

    def to_icc(t: float) -> float:
        return t * t / (t * t + c)

    return IccEstimate(
        to_icc(theta),
        to_icc(lo_t),
        to_icc(hi_t),
        "latent",
        m.ngroups[m.spec.groupings[0].name],
        m.nobs,
        level,
    )


def icc(data: Any, outcome: str, cluster: str, *, method: str = "anova", level: float = 0.95) -> IccEstimate:
    """Estimate the ICC of ``outcome`` within ``cluster``.

    Examples
    --------
    >>> import multilevel
    >>> est = icc(multilevel.load_dataset("crt10"), "y", "cluster")
    >>> est.method, est.n_clusters
    ('anova', 10)
    """
    df = to_pandas(data)
    check_columns(df, [outcome, cluster], "icc()")
    mask, _ = complete_rows(df, [outcome, cluster], "omit")  # counted and reported, as fit() does
    df = df.loc[mask, [outcome, cluster]]
    if pd.api.types.is_numeric_dtype(df[outcome]):
        check_finite(f"the outcome {outcome!r}", df[outcome].to_numpy(dtype=float), df.index)
    if method == "anova":
        codes, levels = factor_codes(df, (cluster,))
        if len(levels) < 2:
            raise DataError("the ICC needs at least 2 clusters")
        est = _anova(df[outcome].to_numpy(dtype=float), codes, level)
    elif method == "reml":
        est = _reml(f"{outcome} ~ 1 + (1 | {cluster})", df, level)
    elif method == "latent":
        est = _latent(f"{outcome} ~ 1 + (1 | {cluster})", df, level)
    else:
        raise DataError(f"method must be 'anova', 'reml' or 'latent', got {method!r}")
    return replace(est, n_missing=int((~mask).sum()))
