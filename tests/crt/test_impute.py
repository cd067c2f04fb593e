"""Multilevel multiple imputation and Rubin's rules."""

import math

import numpy as np
import pandas as pd
import pytest

from multilevel import crt
from multilevel.errors import DataError


def test_rubins_rules_by_hand():
    est = np.array([1.0, 1.2, 0.8, 1.1])
    var = np.array([0.04, 0.05, 0.045, 0.05])
    q, t, nu, lam = crt.rubin(est, var, df_complete=20.0)
    m = 4
    b = est.var(ddof=1)
    ubar = var.mean()
    assert q == pytest.approx(est.mean())
    assert t == pytest.approx(ubar + (1 + 1 / m) * b)
    lam_h = (1 + 1 / m) * b / t
    nu_old = (m - 1) / lam_h**2
    nu_obs = 21 / 23 * 20 * (1 - lam_h)
    assert lam == pytest.approx(lam_h)
    assert nu == pytest.approx(1 / (1 / nu_old + 1 / nu_obs))


def _trial(seed, binary=False):
    rng = np.random.default_rng(seed)
    K, m = 16, 25
    g = np.repeat(np.arange(K), m)
    arm = (np.arange(K) % 2)[g]
    x = rng.normal(size=g.size)
    b = rng.normal(scale=0.4, size=K)[g]
    if binary:
        y = rng.binomial(1, 1 / (1 + np.exp(-(-0.5 + 0.8 * arm + x + b)))).astype(float)
    else:
        y = 0.5 * arm + x + b + rng.normal(size=g.size)
    miss = rng.random(g.size) < 1 / (1 + np.exp(-(-1.5 + 1.5 * x * arm)))
    return pd.DataFrame({"y": np.where(miss, np.nan, y), "arm": arm, "c": g, "x": x})


def test_mi_agrees_with_the_adjusted_mixed_model():
    d = _trial(3)
    mi = crt.impute_and_analyze(d, outcome="y", arm="arm", cluster="c", covariates=["x"], m=10, seed=1)
    lmm = crt.analyze(d, outcome="y", arm="arm", cluster="c", covariates=["x"]).primary
    assert mi.method == "lmm"
    assert abs(mi.estimate - lmm.estimate) < 0.5 * lmm.se
    assert mi.se >= 0.9 * lmm.se  # imputation does not invent information
    assert 0 < mi.fraction_missing_info < 1 and math.isfinite(mi.df)


def test_binary_mi_runs_with_gee_analysis():
    d = _trial(5, binary=True)
    mi = crt.impute_and_analyze(d, outcome="y", arm="arm", cluster="c", covariates=["x"], m=5, seed=2)
    assert mi.method == "gee" and np.isfinite(mi.estimate) and mi.se > 0


def test_mi_input_checks():
    d = _trial(3)
    with pytest.raises(DataError, match="no missing values"):
        crt.impute_and_analyze(d.dropna(), outcome="y", arm="arm", cluster="c")
    with pytest.raises(DataError, match="arm and cluster must be complete"):
        crt.impute_and_analyze(d.assign(c=d.c.where(d.index != 0)), outcome="y", arm="arm", cluster="c")


def test_missing_covariate_by_chained_two_level_models():
    rng = np.random.default_rng(9)
    K, m = 16, 25
    g = np.repeat(np.arange(K), m)
    arm = (np.arange(K) % 2)[g]
    x = rng.normal(size=g.size) + rng.normal(scale=0.5, size=K)[g]
    y = 0.5 * arm + x + rng.normal(scale=0.4, size=K)[g] + rng.normal(size=g.size)
    full = pd.DataFrame({"y": y, "arm": arm, "c": g, "x": x})
    truth = crt.analyze(full, outcome="y", arm="arm", cluster="c", covariates=["x"]).primary
    d = full.copy()
    d.loc[rng.random(g.size) < 0.2, "x"] = np.nan  # covariate missing completely at random
    d.loc[rng.random(g.size) < 0.15, "y"] = np.nan
    mi = crt.impute_and_analyze(d, outcome="y", arm="arm", cluster="c", covariates=["x"], m=8, iterations=5)
    assert abs(mi.estimate - truth.estimate) < 2 * truth.se
    assert mi.se > truth.se  # less information than the complete data
