"""Multilevel multiple imputation of missing outcomes and covariates in a CRT, pooled by Rubin's rules.

Imputation model: a random-intercept model of the outcome on the arm, the analysis
covariates and any auxiliary variables, ``(1 | cluster)`` (LMM for continuous,
logistic GLMM for binary outcomes), so imputations respect the clustering.
Imputations are proper: each draws the model parameters from their sampling
distribution by refitting on a cluster bootstrap (clusters resampled within arm),
then draws every cluster's random intercept from its conditional distribution
given that cluster's observed outcomes, then the missing outcomes.

The completed data sets are analysed by :func:`multilevel.crt.analyze`'s method
and pooled by Rubin's rules, with Barnard & Rubin's (1999) small-sample degrees
of freedom from the complete-data df of the analysis.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special, stats

from ..errors import DataError
from ..model.data import check_columns, to_pandas
from .analyze import _effect, _outcome_type


@dataclass(frozen=True)
class PooledEffect:
    estimate: float
    se: float
    df: float
    p_value: float
    lower: float
    upper: float
    m: int
    fraction_missing_info: float
    method: str

    def __str__(self) -> str:
        return (
            f"MI ({self.m} imputations, {self.method}): {self.estimate:.4g} "
            f"(SE {self.se:.4g}, df {self.df:.1f}), "
            f"95% CI [{self.lower:.4g}, {self.upper:.4g}], p = {self.p_value:.3g}; "
            f"fraction of missing information {self.fraction_missing_info:.2f}"
        )


def rubin(
    estimates: np.ndarray, variances: np.ndarray, df_complete: float
) -> tuple[float, float, float, float]:
    """Pooled estimate, total variance, Barnard-Rubin df and fraction of missing information."""
    m = estimates.size
    qbar = float(estimates.mean())
    ubar = float(variances.mean())
    b = float(estimates.var(ddof=1)) if m > 1 else 0.0
    t = ubar + (1 + 1 / m) * b
    lam = (1 + 1 / m) * b / t if t > 0 else 0.0
    if lam <= 0:
        return qbar, t, df_complete, 0.0
    nu_old = (m - 1) / lam**2
    if not math.isfinite(df_complete):
        return qbar, t, nu_old, lam
    nu_obs = (df_complete + 1) / (df_complete + 3) * df_complete * (1 - lam)
    return qbar, t, 1 / (1 / nu_old + 1 / nu_obs), lam


def _fit_imputation_model(d: pd.DataFrame, target: str, rhs: str, binary: bool, observed: np.ndarray) -> Any:
    import multilevel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obs = d[observed]
        if binary:
            return multilevel.fit(f"{target} ~ {rhs} + (1 | _cluster)", obs, family="binomial")
        return multilevel.fit(f"{target} ~ {rhs} + (1 | _cluster)", obs)


def _cluster_bootstrap(
    rng: np.random.Generator, d: pd.DataFrame, observed: np.ndarray
) -> tuple[pd.DataFrame, np.ndarray]:
    parts, flags = [], []
    for _, grp in d.assign(_obs=observed).groupby("_arm"):
        ids = grp._cluster.unique()
        for j, c in enumerate(rng.choice(ids, size=ids.size, replace=True)):
            part = grp[grp._cluster == c].copy()
            part["_cluster"] = f"{c}#{j}"
            parts.append(part)
    boot = pd.concat(parts, ignore_index=True)
    flags = boot.pop("_obs").to_numpy(dtype=bool)
    return boot, flags


def _impute_once(
    rng: np.random.Generator,
    d: pd.DataFrame,
    rhs: str,
    binary: bool,
    target: str = "_y",
    missing: np.ndarray | None = None,
) -> pd.DataFrame:
    """One proper draw of ``target`` where ``missing`` (default: where it is NaN)."""
    miss = d[target].isna().to_numpy() if missing is None else missing
    boot, boot_obs = _cluster_bootstrap(rng, d, ~miss)
    fit = _fit_imputation_model(boot, target, rhs, binary, boot_obs)
    X = np.asarray(fit.spec.fixed_spec.get_model_matrix(d, na_action="ignore").to_numpy(dtype=float))
    eta = X @ fit.fixef.to_numpy()
    tau = float(fit.covariances["_cluster"].to_numpy()[0, 0]) ** 0.5
    y = d[target].to_numpy(dtype=float)
    codes, levels = pd.factorize(d._cluster)
    K = len(levels)
    b = np.empty(K)
    for c in range(K):
        rows = codes == c
        obs = rows & ~miss
        if binary:
            # conditional of the intercept given the cluster's observed outcomes: Laplace (normal)
            yo, eo = y[obs], eta[obs]
            bc = 0.0
            for _ in range(30):
                p = special.expit(eo + bc)
                grad = float(np.sum(yo - p)) - bc / tau**2 if tau > 0 else 0.0
                hess = float(np.sum(p * (1 - p))) + (1 / tau**2 if tau > 0 else 1e12)
                step = grad / hess
                bc += step
                if abs(step) < 1e-10:
                    break
            b[c] = rng.normal(bc, 1 / math.sqrt(hess)) if tau > 0 else 0.0
        else:
            sigma = fit.sigma
            n = int(obs.sum())
            prec = n / sigma**2 + (1 / tau**2 if tau > 0 else 1e12)
            mean = float(np.sum(y[obs] - eta[obs])) / sigma**2 / prec
            b[c] = rng.normal(mean, 1 / math.sqrt(prec))
    lin = eta + b[codes]
    out = d.copy()
    if binary:
        out.loc[miss, target] = rng.binomial(1, special.expit(lin[miss])).astype(float)
    else:
        out.loc[miss, target] = rng.normal(lin[miss], fit.sigma)
    return out


def _fcs(
    rng: np.random.Generator, d: pd.DataFrame, incomplete: list[str], predictors: list[str], iterations: int
) -> pd.DataFrame:
    """Fully conditional specification with two-level models: one completed data set."""
    miss = {v: d[v].isna().to_numpy() for v in incomplete}
    kinds = {v: _outcome_type(d[v]) == "binary" for v in incomplete}
    cur = d.copy()
    for v in incomplete:  # start from observed means
        cur.loc[miss[v], v] = float(d[v].mean())
    for _ in range(iterations):
        for v in incomplete:
            others = ["_arm", *(p for p in predictors if p != v)]
            cur = _impute_once(rng, cur, " + ".join(others), kinds[v], target=v, missing=miss[v])
    return cur


def impute_and_analyze(
    data: Any,
    *,
    outcome: str,
    arm: str,
    cluster: str,
    covariates: list[str] | None = None,
    auxiliary: list[str] | None = None,
    m: int = 20,
    method: str = "auto",
    seed: int = 0,
    iterations: int = 10,
) -> PooledEffect:
    """Multilevel multiple imputation, analysis, and Rubin's rules.

    ``covariates`` enter both the imputation and the analysis model; ``auxiliary``
    variables only the imputation model (they make MAR plausible without changing
    the estimand). When only the outcome is incomplete each imputation is one
    draw from the outcome's two-level model; when covariates or auxiliary
    variables are incomplete too, each is imputed by fully conditional
    specification (``iterations`` rounds of two-level models of every incomplete
    variable on all the others, the arm and a cluster intercept).
    """
    df = to_pandas(data)
    covariates = list(covariates or [])
    auxiliary = list(auxiliary or [])
    check_columns(df, [outcome, arm, cluster, *covariates, *auxiliary], "crt.impute_and_analyze()")
    arms = sorted(df[arm].dropna().unique())
    if len(arms) != 2:
        raise DataError(f"arm {arm!r} must have exactly two values")
    d = pd.DataFrame(
        {"_y": df[outcome].astype(float), "_arm": (df[arm] == arms[1]).astype(float), "_cluster": df[cluster]}
    )
    for c in covariates + auxiliary:
        d[c] = df[c]
    if d[["_arm", "_cluster"]].isna().any().any():
        raise DataError("arm and cluster must be complete in every row")
    incomplete = [c for c in ["_y", *covariates, *auxiliary] if d[c].isna().any()]
    if not incomplete:
        raise DataError("no missing values in the outcome or covariates: analyse the data with crt.analyze")
    otype = _outcome_type(d._y)
    binary = otype == "binary"
    imp_rhs = " + ".join(["_arm", *covariates, *auxiliary])
    ana_rhs = " + ".join(["_arm", *covariates])
    primary = method if method != "auto" else ("lmm" if otype == "continuous" else "gee")
    rng = np.random.default_rng(seed)
    est, var, dfs = [], [], []
    predictors = ["_y", *covariates, *auxiliary]
    for _ in range(m):
        if incomplete == ["_y"]:
            completed = _impute_once(rng, d, imp_rhs, binary)
        else:
            completed = _fcs(rng, d, incomplete, predictors, iterations)
        e = _effect(primary, completed, ana_rhs, otype)
        est.append(e.estimate)
        var.append(e.se**2)
        dfs.append(e.df)
    qbar, t, nu, lam = rubin(np.array(est), np.array(var), float(np.median(dfs)))
    se = math.sqrt(t)
    q = stats.t.ppf(0.975, nu) if math.isfinite(nu) else stats.norm.ppf(0.975)
    p = 2 * (stats.t.sf(abs(qbar) / se, nu) if math.isfinite(nu) else stats.norm.sf(abs(qbar) / se))
    return PooledEffect(qbar, se, nu, float(p), qbar - q * se, qbar + q * se, m, lam, primary)
