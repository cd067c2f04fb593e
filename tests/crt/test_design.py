"""CRT design formulas against hand calculations, and ICC estimators."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from multilevel import crt
from multilevel.errors import DataError, MissingDataWarning, ModelError


def test_design_effects_by_hand():
    assert crt.design_effect(20, 0.05) == pytest.approx(1 + 19 * 0.05)
    # Eldridge et al. (2006): 1 + ((cv^2 + 1) m - 1) icc
    assert crt.design_effect(20, 0.05, cv=0.6) == pytest.approx(1 + ((0.36 + 1) * 20 - 1) * 0.05)
    with pytest.raises(ModelError):
        crt.design_effect(20, 1.5)


def test_power_z_by_hand():
    s = crt.continuous(delta=0.3, sd=1.0, icc=0.05)
    se = math.sqrt(2 * 1.0 * 1.95 / (10 * 20))
    want = stats.norm.cdf(0.3 / se - stats.norm.ppf(0.975)) + stats.norm.cdf(
        -0.3 / se - stats.norm.ppf(0.975)
    )
    assert crt.power(s, 10, 20, reference="z") == pytest.approx(want, rel=1e-12)


def test_power_t_is_noncentral_t_on_2k_minus_2():
    s = crt.binary(0.3, 0.2, icc=0.02)
    k, m = 8, 30
    se = math.sqrt((0.3 * 0.7 + 0.2 * 0.8) * (1 + 29 * 0.02) / (k * m))
    df = 2 * k - 2
    tc = stats.t.ppf(0.975, df)
    want = stats.nct.sf(tc, df, 0.1 / se) + stats.nct.cdf(-tc, df, 0.1 / se)
    assert crt.power(s, k, m) == pytest.approx(want, rel=1e-12)
    assert crt.power(s, k, m) < crt.power(s, k, m, reference="z")


def test_rates_hayes_bennett():
    s = crt.rate(0.01, 0.007, between_cv=0.25)
    y = 1000.0  # person-years per cluster
    c = 12
    se = math.sqrt(((0.01 + 0.007) / y + 0.25**2 * (0.01**2 + 0.007**2)) / c)
    z = stats.norm.ppf(0.975)
    want = stats.norm.cdf(0.003 / se - z) + stats.norm.cdf(-0.003 / se - z)
    assert crt.power(s, c, y, reference="z") == pytest.approx(want, rel=1e-12)


def test_sample_size_solvers_are_minimal():
    s = crt.continuous(0.3, 1.0, 0.05)
    k = crt.clusters_needed(s, 20)
    assert crt.power(s, k, 20) >= 0.8 > crt.power(s, k - 1, 20)
    m = crt.cluster_size_needed(s, 15)
    assert crt.power(s, 15, m) >= 0.8 > crt.power(s, 15, m - 1)
    with pytest.raises(ModelError, match="cannot reach power"):
        crt.cluster_size_needed(s, 4)


def test_power_grid_shape_and_monotone():
    g = crt.power_grid(crt.continuous(0.3, 1.0, 0.05), [5, 10, 20], [10, 20, 50])
    assert g.shape == (3, 3)
    assert np.all(np.diff(g.to_numpy(), axis=0) > 0) and np.all(np.diff(g.to_numpy(), axis=1) > 0)


def test_anova_icc_by_hand():
    d = pd.DataFrame({"y": [1, 2, 3, 4, 5, 6, 7, 8, 9.0], "g": list("aaabbbccc")})
    # means 2, 5, 8: MSB = 3 (9 + 0 + 9) / 2 = 27, MSW = 6 / 6 = 1, n0 = 3
    est = crt.icc(d, "y", "g")
    assert est.icc == pytest.approx(26 / 29)
    F = 27.0
    fl = F / stats.f.ppf(0.975, 2, 6)
    assert est.lower == pytest.approx((fl - 1) / (fl + 2))


@pytest.mark.parametrize("method", ["anova", "reml"])
def test_icc_recovers_a_known_icc(method):
    rng = np.random.default_rng(11)
    K, m, rho = 150, 12, 0.2
    g = np.repeat(np.arange(K), m)
    y = rng.normal(scale=math.sqrt(rho), size=K)[g] + rng.normal(scale=math.sqrt(1 - rho), size=g.size)
    est = crt.icc(pd.DataFrame({"y": y, "g": g}), "y", "g", method=method)
    assert est.lower < rho < est.upper
    assert est.icc == pytest.approx(rho, abs=0.05)


def test_latent_icc_for_binary():
    rng = np.random.default_rng(4)
    K, m = 80, 25
    s2 = 0.3
    g = np.repeat(np.arange(K), m)
    y = rng.binomial(1, 1 / (1 + np.exp(-(-0.5 + rng.normal(scale=math.sqrt(s2), size=K)[g]))))
    est = crt.icc(pd.DataFrame({"y": y, "g": g}), "y", "g", method="latent")
    true = s2 / (s2 + math.pi**2 / 3)
    assert est.lower < true < est.upper


def test_power_plot_draws_a_line_per_size():
    pytest.importorskip("matplotlib")
    grid = crt.power_grid(crt.continuous(0.3, 1.0, 0.05), [4, 8, 12], [10, 30])
    fig = crt.plot_power_grid(grid)
    ax = fig.axes[0]
    assert len(ax.get_lines()) == 3  # two sizes and the target line
    assert ax.get_xlabel() == "clusters per arm"


def test_icc_counts_and_reports_the_rows_it_drops():
    d = pd.DataFrame({"y": [1, 2, 3, 4, 5, 6, 7, 8, 9.0, np.nan, 4.0], "g": list("aaabbbcccca")})
    d.loc[10, "g"] = None
    with pytest.warns(MissingDataWarning, match=r"dropped 2 of 11 rows .* y \(1\), g \(1\)"):
        est = crt.icc(d, "y", "g")
    assert est.n_missing == 2 and est.nobs == 9
    assert est.icc == pytest.approx(26 / 29)  # the by-hand example's rows
    assert "2 rows with missing values were dropped" in str(est)


@pytest.mark.parametrize("method", ["anova", "reml"])
def test_icc_refuses_an_infinite_outcome_naming_the_row(method):
    d = pd.DataFrame({"y": [1, 2, 3, 4, 5, 6, 7, 8, 9.0], "g": list("aaabbbccc")}, index=list("pqrstuvwx"))
    d.loc["s", "y"] = np.inf
    with pytest.raises(DataError, match=r"outcome 'y' has 1 non-finite value .* in row s; remove"):
        crt.icc(d, "y", "g", method=method)
