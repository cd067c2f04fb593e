"""The analysis of a parallel cluster randomized trial, with a report that says what was done.

Recommended analyses (``method="auto"``):

* continuous outcome: linear mixed model ``outcome ~ arm + covariates + (1 | cluster)``
  by REML with Satterthwaite degrees of freedom, which stay honest with few clusters;
* binary or count outcome: GEE (exchangeable) with the small-sample corrected SE
  that :func:`multilevel.marginal.results.choose_se` picks (KC or MD with t on K - p
  df below 50 clusters).

Alternatives on request: ``lmm``, ``gee``, ``glmm`` (Laplace, Wald z) and
``cluster_t`` (t test on cluster means, unadjusted). Rows with a missing outcome,
and rows with an observed outcome but a missing covariate, are counted by arm and
left out (with a warning that counts them, as :func:`multilevel.fit` gives); the
mixed model uses every complete row, which is valid when outcomes are missing at
random given the covariates in the model. :func:`multilevel.crt.impute_and_analyze`
imputes them instead.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import DataError
from ..model.data import check_columns, check_finite, complete_rows, to_pandas
from .icc import IccEstimate, icc

METHODS = ("auto", "lmm", "gee", "glmm", "cluster_t")


@dataclass(frozen=True)
class ArmEffect:
    method: str
    estimate: float
    se: float
    df: float
    p_value: float
    lower: float
    upper: float
    scale: str  # "difference" or "log odds ratio" / "log rate ratio"
    correction: str


@dataclass(frozen=True)
class CrtAnalysis:
    outcome_type: str
    effects: tuple[ArmEffect, ...]
    icc: IccEstimate
    clusters_per_arm: dict[str, int]
    cluster_sizes: dict[str, float]
    missing_by_arm: dict[str, int]
    covariates: tuple[str, ...] = field(default_factory=tuple)
    # rows with an observed outcome left out for a missing covariate
    missing_covariates_by_arm: dict[str, int] = field(default_factory=dict)

    @property
    def primary(self) -> ArmEffect:
        return self.effects[0]

    def report(self) -> str:
        e = self.primary
        lines = [
            f"Cluster randomized trial analysis ({self.outcome_type} outcome)",
            f"Clusters per arm: {', '.join(f'{k}: {v}' for k, v in self.clusters_per_arm.items())}; "
            f"cluster size min {self.cluster_sizes['min']:.0f}, mean {self.cluster_sizes['mean']:.1f}, "
            f"max {self.cluster_sizes['max']:.0f}",
            f"{self.icc}",
            f"Method: {e.method}; small-sample handling: {e.correction}",
        ]
        if self.covariates:
            lines.append(f"Adjusted for: {', '.join(self.covariates)}")
        if any(self.missing_by_arm.values()):
            miss = ", ".join(f"arm {k}: {v}" for k, v in self.missing_by_arm.items())
            lines.append(
                f"Missing outcomes ({miss}) were left out; the mixed model is valid if outcomes are "
                "missing at random given the covariates in the model"
            )
        if any(self.missing_covariates_by_arm.values()):
            miss = ", ".join(f"arm {k}: {v}" for k, v in self.missing_covariates_by_arm.items())
            lines.append(
                f"Rows with a missing covariate ({miss}) were left out (a complete-case analysis; "
                "multiple imputation would keep them)"
            )
        lines.append("")
        lines.append(f"{'method':<10} {'effect':>10} {'SE':>8} {'df':>7} {'p':>9}   95% CI   scale")
        for f in self.effects:
            df = "inf" if not np.isfinite(f.df) else f"{f.df:.1f}"
            lines.append(
                f"{f.method:<10} {f.estimate:>10.4g} {f.se:>8.4g} {df:>7} {f.p_value:>9.3g}   "
                f"[{f.lower:.4g}, {f.upper:.4g}]   {f.scale}"
            )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.report()

    def to_dict(self) -> dict:
        return {
            "outcome_type": self.outcome_type,
            "icc": {
                "estimate": self.icc.icc,
                "lower": self.icc.lower,
                "upper": self.icc.upper,
                "method": self.icc.method,
            },
            "clusters_per_arm": self.clusters_per_arm,
            "cluster_sizes": self.cluster_sizes,
            "missing_by_arm": self.missing_by_arm,
            "missing_covariates_by_arm": self.missing_covariates_by_arm,
            "covariates": list(self.covariates),
            "effects": [
                {
                    k: (None if isinstance(v, float) and not np.isfinite(v) else v)
                    for k, v in e.__dict__.items()
                }
                for e in self.effects
            ],
        }


def _outcome_type(y: pd.Series) -> str:
    vals = pd.unique(y.dropna())
    if len(vals) <= 2 and set(np.asarray(vals, dtype=float)) <= {0.0, 1.0}:
        return "binary"
    if np.all(np.asarray(vals, dtype=float) >= 0) and np.all(np.mod(np.asarray(vals, dtype=float), 1) == 0):
        return "count"
    return "continuous"


def _effect(method: str, d: pd.DataFrame, rhs: str, outcome_type: str) -> ArmEffect:
    import multilevel

    family = {"binary": "binomial", "count": "poisson", "continuous": "gaussian"}[outcome_type]
    scale = {"binary": "log odds ratio", "count": "log rate ratio", "continuous": "difference"}[outcome_type]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if method == "lmm":
            m = multilevel.fit(f"_y ~ {rhs} + (1 | _cluster)", d)
            r = m.coef_table.loc["_arm"]
            df = float(r["df"])
            q = stats.t.ppf(0.975, df)
            return ArmEffect(
                "lmm",
                r["Estimate"],
                r["Std. Error"],
                df,
                r["Pr(>|t|)"],
                r["Estimate"] - q * r["Std. Error"],
                r["Estimate"] + q * r["Std. Error"],
                "difference",
                "REML with Satterthwaite df",
            )
        if method == "glmm":
            m = multilevel.fit(f"_y ~ {rhs} + (1 | _cluster)", d, family=family)
            r = m.coef_table.loc["_arm"]
            q = stats.norm.ppf(0.975)
            return ArmEffect(
                "glmm",
                r["Estimate"],
                r["Std. Error"],
                float("inf"),
                r["Pr(>|z|)"] if "Pr(>|z|)" in r.index else r["Pr(>|t|)"],  # a Gaussian GLMM is an LMM
                r["Estimate"] - q * r["Std. Error"],
                r["Estimate"] + q * r["Std. Error"],
                scale,
                "none (Wald z; anti-conservative with few clusters)",
            )
        if method == "gee":
            m = multilevel.gee(f"_y ~ {rhs}", d, groups="_cluster", family=family)
            ct = m.coef_table
            r = ct.loc["_arm"]
            return ArmEffect(
                "gee",
                r["Estimate"],
                r["Std. Error"],
                m.df,
                r[ct.columns[3]],
                r["2.5 %"],
                r["97.5 %"],
                scale,
                f"{m.se_method} SE ({m.se_reason})",
            )
        if method == "cluster_t":
            means = d.groupby("_cluster").agg(y=("_y", "mean"), arm=("_arm", "first"))
            a, b = means.y[means.arm == 1], means.y[means.arm == 0]
            t = stats.ttest_ind(a, b)
            diff = float(a.mean() - b.mean())
            se = abs(diff / t.statistic) if t.statistic else float("nan")
            df = float(len(a) + len(b) - 2)
            q = stats.t.ppf(0.975, df)
            return ArmEffect(
                "cluster_t",
                diff,
                se,
                df,
                float(t.pvalue),
                diff - q * se,
                diff + q * se,
                "difference",
                "t test on cluster means (unadjusted)",
            )
    raise DataError(f"method must be one of {', '.join(METHODS)}")


def analyze(
    data: Any,
    *,
    outcome: str,
    arm: str,
    cluster: str,
    covariates: list[str] | None = None,
    method: str = "auto",
    alternatives: list[str] | None = None,
) -> CrtAnalysis:
    """Analyse a parallel two-arm CRT; ``alternatives`` adds other analyses to the report."""
    df = to_pandas(data)
    covariates = list(covariates or [])
    roles = {"outcome": [outcome], "arm": [arm], "cluster": [cluster], "covariates": covariates}
    for name, cols in roles.items():  # a message names the argument (the CLI: its flag)
        check_columns(df, cols, f"{name}=")
    if df[cluster].isna().any() or df[arm].isna().any():
        raise DataError("every row needs its cluster and arm; fill in or drop rows where they are missing")
    arms = sorted(df[arm].unique())
    if len(arms) != 2:
        raise DataError(f"arm {arm!r} must have exactly two values, found {len(arms)}")
    per_cluster = df.groupby(cluster)[arm].nunique()
    if (per_cluster > 1).any():
        raise DataError(f"arm {arm!r} varies within clusters: this is not a cluster randomized design")
    complete, _ = complete_rows(df, [outcome, *covariates], "omit")  # warns with the counts, as fit()
    y_na = df[outcome].isna().to_numpy()
    arm_of = df[arm].to_numpy()

    def by_arm(rows: np.ndarray) -> dict[str, int]:
        return {str(a): int(np.sum(rows & (arm_of == a))) for a in arms}

    d = pd.DataFrame({"_y": df[outcome], "_arm": (df[arm] == arms[1]).astype(float), "_cluster": df[cluster]})
    for c in covariates:
        d[c] = df[c]
    d = d.loc[complete].reset_index(drop=True)
    if pd.api.types.is_numeric_dtype(d["_y"]):
        check_finite(f"the outcome {outcome!r}", d["_y"].to_numpy(dtype=float), df.index[complete])
    otype = _outcome_type(d["_y"])
    rhs = " + ".join(["_arm", *covariates])
    primary = method if method != "auto" else ("lmm" if otype == "continuous" else "gee")
    methods = [primary] + [m for m in (alternatives or []) if m != primary]
    effects = tuple(_effect(m, d, rhs, otype) for m in methods)
    sizes = d.groupby("_cluster").size()
    k = d.groupby("_arm")["_cluster"].nunique()
    return CrtAnalysis(
        outcome_type=otype,
        effects=effects,
        icc=icc(d, "_y", "_cluster"),
        clusters_per_arm={str(arms[0]): int(k.get(0.0, 0)), str(arms[1]): int(k.get(1.0, 0))},
        cluster_sizes={"min": float(sizes.min()), "mean": float(sizes.mean()), "max": float(sizes.max())},
        missing_by_arm=by_arm(y_na),
        covariates=tuple(covariates),
        missing_covariates_by_arm=by_arm(~complete & ~y_na),
    )
