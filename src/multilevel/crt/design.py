"""Design of parallel two-arm cluster randomized trials: design effects, power, sizes.

Continuous and binary outcomes use the ICC: the variance of the difference in
arm means is ``2 sigma^2 DE / (k m)`` with ``k`` clusters per arm of mean size
``m`` and ``DE = 1 + (m - 1) ICC``, or with unequal sizes Eldridge et al.'s (2006)
``1 + ((CV^2 + 1) m - 1) ICC``. Rates use Hayes & Bennett's (1999) between-cluster
coefficient of variation of the true rates. Power uses a t reference on
``2k - 2`` degrees of freedom by default (the small-sample adjustment the CRT
literature recommends; ``reference="z"`` for the normal approximation), with the
noncentral t distribution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ModelError

Reference = Literal["t", "z"]


def design_effect(cluster_size: float, icc: float, cv: float = 0.0) -> float:
    """``1 + ((cv^2 + 1) m - 1) icc``; with ``cv = 0`` the usual ``1 + (m - 1) icc``.

    Examples
    --------
    >>> round(design_effect(20, 0.05), 4)
    1.95
    >>> round(design_effect(20, 0.05, cv=0.6), 4)
    2.31
    """
    if not 0 <= icc <= 1:
        raise ModelError(f"icc must be in [0, 1], got {icc}")
    if cluster_size < 1:
        raise ModelError(f"cluster_size must be at least 1, got {cluster_size}")
    return 1.0 + ((cv * cv + 1.0) * cluster_size - 1.0) * icc


def _power_from_se(delta: float, se: float, df: float, alpha: float, reference: Reference) -> float:
    ncp = abs(delta) / se
    if reference == "z" or not math.isfinite(df):
        z = stats.norm.ppf(1 - alpha / 2)
        return float(stats.norm.sf(z - ncp) + stats.norm.cdf(-z - ncp))
    if df < 1:
        return float("nan")
    t = stats.t.ppf(1 - alpha / 2, df)
    return float(stats.nct.sf(t, df, ncp) + stats.nct.cdf(-t, df, ncp))


@dataclass(frozen=True)
class Scenario:
    """An outcome scenario: what the trial compares and how variable it is."""

    outcome: Literal["continuous", "binary", "rate"]
    delta: float  # difference to detect (means, proportions or rates)
    variance: float  # per-individual variance summed over the two arms / 2 (continuous, binary)
    icc: float = 0.0
    cv: float = 0.0  # coefficient of variation of cluster sizes (continuous, binary)
    rates: tuple[float, float] = (0.0, 0.0)
    between_cv: float = 0.0  # rates: CV of true cluster rates (Hayes & Bennett's k)
    baseline: float = 0.0  # binary: the control arm's proportion

    def se(self, clusters_per_arm: int, cluster_size: float) -> float:
        k, m = clusters_per_arm, cluster_size
        if self.outcome == "rate":
            l1, l2 = self.rates
            return math.sqrt(((l1 + l2) / m + self.between_cv**2 * (l1 * l1 + l2 * l2)) / k)
        de = design_effect(m, self.icc, self.cv)
        return math.sqrt(2 * self.variance * de / (k * m))


def continuous(delta: float, sd: float, icc: float, cv: float = 0.0) -> Scenario:
    """Difference in means ``delta`` with outcome SD ``sd`` (total, within + between)."""
    return Scenario("continuous", delta, sd * sd, icc=icc, cv=cv)


def binary(p1: float, p2: float, icc: float, cv: float = 0.0) -> Scenario:
    """Proportions ``p1`` (control) and ``p2`` (intervention); ICC on the proportion scale."""
    for p in (p1, p2):
        if not 0 < p < 1:
            raise ModelError(f"proportions must be in (0, 1), got {p}")
    return Scenario("binary", p2 - p1, 0.5 * (p1 * (1 - p1) + p2 * (1 - p2)), icc=icc, cv=cv, baseline=p1)


def rate(rate1: float, rate2: float, between_cv: float) -> Scenario:
    """Event rates per unit of person-time; ``cluster_size`` is then person-time per cluster."""
    if rate1 <= 0 or rate2 <= 0:
        raise ModelError("rates must be positive")
    return Scenario("rate", rate2 - rate1, 0.0, rates=(rate1, rate2), between_cv=between_cv)


def power(
    scenario: Scenario,
    clusters_per_arm: int,
    cluster_size: float,
    *,
    alpha: float = 0.05,
    reference: Reference = "t",
) -> float:
    """Power of the two-sided test of no difference between the arms.

    Examples
    --------
    >>> round(power(continuous(0.3, 1.0, 0.05), 10, 20), 3)
    0.529
    """
    if clusters_per_arm < 2:
        raise ModelError("need at least 2 clusters per arm")
    se = scenario.se(clusters_per_arm, cluster_size)
    return _power_from_se(scenario.delta, se, 2 * clusters_per_arm - 2, alpha, reference)


def clusters_needed(
    scenario: Scenario,
    cluster_size: float,
    *,
    target: float = 0.8,
    alpha: float = 0.05,
    reference: Reference = "t",
    max_clusters: int = 10_000,
) -> int:
    """Smallest number of clusters per arm reaching ``target`` power."""
    for k in range(2, max_clusters + 1):
        if power(scenario, k, cluster_size, alpha=alpha, reference=reference) >= target:
            return k
    raise ModelError(f"power {target} is not reached with up to {max_clusters} clusters per arm")


def cluster_size_needed(
    scenario: Scenario,
    clusters_per_arm: int,
    *,
    target: float = 0.8,
    alpha: float = 0.05,
    reference: Reference = "t",
    max_size: int = 100_000,
) -> int:
    """Smallest (mean) cluster size reaching ``target`` power with ``clusters_per_arm`` clusters.

    With few clusters, power is bounded as the clusters grow (the between-cluster
    variance does not shrink); then no size suffices and an error says so.
    """
    if power(scenario, clusters_per_arm, max_size, alpha=alpha, reference=reference) < target:
        raise ModelError(
            f"{clusters_per_arm} clusters per arm cannot reach power {target} at any cluster size "
            "(the between-cluster variance sets a ceiling); add clusters"
        )
    lo, hi = 1, max_size
    while lo < hi:
        mid = (lo + hi) // 2
        if power(scenario, clusters_per_arm, mid, alpha=alpha, reference=reference) >= target:
            hi = mid
        else:
            lo = mid + 1
    return lo


def power_grid(
    scenario: Scenario,
    clusters_per_arm: list[int] | np.ndarray,
    cluster_sizes: list[float] | np.ndarray,
    *,
    alpha: float = 0.05,
    reference: Reference = "t",
) -> pd.DataFrame:
    """Power over a grid: rows clusters per arm, columns cluster sizes."""
    data = [
        [power(scenario, int(k), float(m), alpha=alpha, reference=reference) for m in cluster_sizes]
        for k in clusters_per_arm
    ]
    return pd.DataFrame(
        data,
        index=pd.Index([int(k) for k in clusters_per_arm], name="clusters_per_arm"),
        columns=pd.Index(list(cluster_sizes), name="cluster_size"),
    )


def plot_power_grid(grid: pd.DataFrame, *, target: float | None = 0.8, ax: Any = None) -> Any:
    """Power curves from :func:`power_grid`: one line per cluster size against clusters per arm.

    Returns the matplotlib figure (matplotlib is imported only here).
    """
    import matplotlib

    if ax is None:
        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
    else:
        fig = ax.figure
    for size in grid.columns:
        ax.plot(grid.index, grid[size], marker="o", label=f"cluster size {size:g}")
    if target is not None:
        ax.axhline(target, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("clusters per arm")
    ax.set_ylabel("power")
    ax.set_ylim(0, 1)
    ax.legend(frameon=False)
    return fig
