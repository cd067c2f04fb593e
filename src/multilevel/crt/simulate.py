"""Power and type I error of a CRT analysis by simulation, with the library's own fitters.

Trials are simulated from a hierarchical model matching a :class:`Scenario`:

* continuous: ``y = arm * delta + b_c + e`` with ``Var(b) = icc sd^2``, ``Var(e) = (1 - icc) sd^2``;
* binary: cluster probabilities from a beta distribution with mean ``p_arm`` and
  intracluster correlation ``icc`` (the beta-binomial, whose ICC on the proportion
  scale is exactly ``icc``), then Bernoulli outcomes;
* rate: cluster rates ``rate_arm x Gamma(mean 1, CV between_cv)`` and one Poisson
  count per cluster over ``cluster_size`` units of person-time.

Cluster sizes are equal or gamma-distributed with the scenario's CV. Each trial is
analysed by ``method``: ``lmm`` (REML, Satterthwaite t), ``gee`` (exchangeable,
``se="auto"``), ``glmm`` (binomial Laplace, Wald z) or ``cluster_t`` (t test on
cluster means or rates, 2k - 2 df). Replications run in parallel over processes
with independent seeds (``numpy.random.SeedSequence.spawn``). With equal cluster
sizes every trial has the same design, and the LMM analyses of a chunk of trials
run as one batch of refits (:func:`multilevel.fit_many`).
"""

from __future__ import annotations

import math
import sys
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ModelError
from .design import Scenario

METHODS = ("lmm", "gee", "glmm", "cluster_t")


@dataclass(frozen=True)
class SimulationResult:
    """Rejection rate of the arm effect over simulated trials, with its Monte Carlo SE."""

    rate: float
    mc_se: float
    reps: int
    failures: int
    method: str
    null: bool

    def __str__(self) -> str:
        what = "type I error" if self.null else "power"
        return f"{what} ({self.method}) = {self.rate:.3f} (MC SE {self.mc_se:.3f}, {self.reps} trials)"


def _sizes(rng: np.random.Generator, k: int, m: float, cv: float) -> np.ndarray:
    if cv <= 0:
        return np.full(k, max(round(m), 1))
    shape = 1 / cv**2
    return np.maximum(2, np.round(rng.gamma(shape, m / shape, size=k))).astype(int)


def simulate_trial(
    rng: np.random.Generator,
    scenario: Scenario,
    clusters_per_arm: int,
    cluster_size: float,
    null: bool = False,
) -> pd.DataFrame:
    """One simulated two-arm trial: columns y (or events/exposure), arm, cluster."""
    K = 2 * clusters_per_arm
    arm_c = np.repeat([0.0, 1.0], clusters_per_arm)
    if scenario.outcome == "rate":
        l1, l2 = scenario.rates
        lam = np.where(arm_c == 1, l1 if null else l2, l1)
        cv = scenario.between_cv
        mult = rng.gamma(1 / cv**2, cv**2, size=K) if cv > 0 else np.ones(K)
        events = rng.poisson(lam * mult * cluster_size)
        return pd.DataFrame(
            {"events": events, "exposure": cluster_size, "arm": arm_c, "cluster": np.arange(K)}
        )
    sizes = _sizes(rng, K, cluster_size, scenario.cv)
    cl = np.repeat(np.arange(K), sizes)
    arm = arm_c[cl]
    delta = 0.0 if null else scenario.delta
    if scenario.outcome == "continuous":
        sd = math.sqrt(scenario.variance)
        b = rng.normal(scale=sd * math.sqrt(scenario.icc), size=K)[cl]
        y = arm * delta + b + rng.normal(scale=sd * math.sqrt(1 - scenario.icc), size=cl.size)
    else:
        p1 = scenario.baseline
        p_arm = np.where(arm_c == 1, p1 + delta, p1)
        rho = scenario.icc
        if rho > 0:
            s = (1 - rho) / rho
            p_c = rng.beta(p_arm * s, (1 - p_arm) * s)
        else:
            p_c = p_arm
        y = rng.binomial(1, p_c[cl]).astype(float)
    return pd.DataFrame({"y": y, "arm": arm, "cluster": cl})


def _analyse(d: pd.DataFrame, scenario: Scenario, method: str, alpha: float) -> bool:
    import multilevel

    if scenario.outcome == "rate":
        if method != "cluster_t":
            raise ModelError("rate outcomes are analysed by method='cluster_t' (t test on cluster rates)")
        r = d.events / d.exposure
        return bool(stats.ttest_ind(r[d.arm == 1], r[d.arm == 0]).pvalue < alpha)
    if method == "cluster_t":
        means = d.groupby("cluster").agg(y=("y", "mean"), arm=("arm", "first"))
        return bool(stats.ttest_ind(means.y[means.arm == 1], means.y[means.arm == 0]).pvalue < alpha)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "lmm":
            m = multilevel.fit("y ~ arm + (1 | cluster)", d)
            return bool(m.coef_table.loc["arm", "Pr(>|t|)"] < alpha)
        if method == "glmm":
            m = multilevel.fit("y ~ arm + (1 | cluster)", d, family="binomial")
            return bool(m.coef_table.loc["arm", "Pr(>|z|)"] < alpha)
        if method == "gee":
            fam = "binomial" if scenario.outcome == "binary" else "gaussian"
            m = multilevel.gee("y ~ arm", d, groups="cluster", family=fam)
            ct = m.coef_table
            return bool(ct.loc["arm", ct.columns[3]] < alpha)
    raise ModelError(f"method must be one of {', '.join(METHODS)}")


def _chunk(args: tuple) -> tuple[int, int]:
    scenario, k, m, method, alpha, null, seed_seq, n = args
    rng = np.random.default_rng(seed_seq)
    trials = [simulate_trial(rng, scenario, k, m, null) for _ in range(n)]
    if method == "lmm" and scenario.outcome == "continuous" and _same_design(trials):
        return _lmm_many(trials, alpha)
    rejections = failures = 0
    for d in trials:
        try:
            rejections += _analyse(d, scenario, method, alpha)
        except ModelError:
            raise
        except Exception:
            failures += 1
    return rejections, failures


def _same_design(trials: list[pd.DataFrame]) -> bool:
    """Every trial has the same arms and clusters row by row (equal cluster sizes)."""
    first = trials[0]
    return all(
        len(d) == len(first)
        and np.array_equal(d["arm"].to_numpy(), first["arm"].to_numpy())
        and np.array_equal(d["cluster"].to_numpy(), first["cluster"].to_numpy())
        for d in trials[1:]
    )


def _lmm_many(trials: list[pd.DataFrame], alpha: float) -> tuple[int, int]:
    """The LMM analysis of trials on one design: every response fitted in one batch
    (:func:`multilevel.fit_many`), each equal to its own fit."""
    import multilevel

    Y = np.column_stack([d["y"].to_numpy() for d in trials])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = multilevel.fit_many("y ~ arm + (1 | cluster)", trials[0][["arm", "cluster"]], Y)
    arm = t[(t["effect"] == "fixed") & (t["term"] == "arm")]
    p = arm["p_value"].to_numpy(dtype=float)
    ok = arm["converged"].to_numpy(dtype=bool) & np.isfinite(p)
    return int(np.sum(p[ok] < alpha)), int(np.sum(~ok))


def simulate_power(
    scenario: Scenario,
    clusters_per_arm: int,
    cluster_size: float,
    *,
    method: str = "lmm",
    reps: int = 1000,
    alpha: float = 0.05,
    null: bool = False,
    seed: int = 0,
    workers: int = 1,
    progress: bool = False,
) -> SimulationResult:
    """Power (or, with ``null=True``, type I error) of ``method`` by simulation.

    Examples
    --------
    >>> from multilevel import crt
    >>> r = crt.simulate_power(crt.continuous(0.5, 1.0, 0.05), 6, 10, method="cluster_t", reps=50)
    >>> 0 <= r.rate <= 1
    True
    """
    if method not in METHODS:
        raise ModelError(f"method must be one of {', '.join(METHODS)}")
    n_chunks = max(workers * 4, 1)
    sizes = [reps // n_chunks + (i < reps % n_chunks) for i in range(n_chunks)]
    seeds = np.random.SeedSequence(seed).spawn(n_chunks)
    tasks = [
        (scenario, clusters_per_arm, cluster_size, method, alpha, null, s, n)
        for s, n in zip(seeds, sizes)
        if n
    ]
    results = []
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as ex:
            for i, res in enumerate(ex.map(_chunk, tasks)):
                results.append(res)
                if progress:
                    print(f"\rsimulating: {100 * (i + 1) // len(tasks)}%", end="", file=sys.stderr)
    else:
        for i, t in enumerate(tasks):
            results.append(_chunk(t))
            if progress:
                print(f"\rsimulating: {100 * (i + 1) // len(tasks)}%", end="", file=sys.stderr)
    if progress:
        print(file=sys.stderr)
    rej = sum(r for r, _ in results)
    fail = sum(f for _, f in results)
    done = reps - fail
    rate = rej / done if done else float("nan")
    mc = math.sqrt(rate * (1 - rate) / done) if done else float("nan")
    return SimulationResult(rate, mc, done, fail, method, null)
