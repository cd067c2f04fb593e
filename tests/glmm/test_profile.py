"""GLMM profiles and intervals against lme4 (Laplace and adaptive quadrature)."""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import multilevel
from multilevel.errors import ModelError
from multilevel.optim.profile import ZetaTrace

from ..conftest import DATA, lme4_name

INFERENCE = json.loads((DATA / "lme4_inference.json").read_text())
EXTRA = json.loads((DATA / "lme4_compare_extra.json").read_text())
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
Z95 = float(stats.norm.ppf(0.975))


def _cbpp(nagq):
    return multilevel.fit(CBPP, multilevel.load_dataset("cbpp"), family="binomial", nagq=nagq)


@pytest.mark.parametrize("nagq, ref", [(1, INFERENCE["cbpp_profile"]), (25, EXTRA["cbpp_agq25_profile"])])
def test_cbpp_intervals_match_lme4(nagq, ref):
    g = _cbpp(nagq)
    ci = g.confint()
    rows = ref["ci"]
    assert [r["par"] for r in rows] == [n if n.startswith("sd_") else lme4_name(n) for n in ci.index]
    for r, (name, got) in zip(rows, ci.iterrows()):
        for side in ("lower", "upper"):
            assert got[side] == pytest.approx(r[side], rel=2e-4), (name, side)
    # ours sit on the level (lme4's spline is within 1e-4 of them)
    prof = g._profiler()
    for i, (_, row) in enumerate(ci.iterrows()):
        assert abs(ZetaTrace(prof, i).zeta(row["upper"]) - Z95) < 1e-6


def test_profile_and_wald():
    g = _cbpp(1)
    pr = g.profile(parm="sd_(Intercept)|herd", points=4)
    tr = pr.zeta("sd_(Intercept)|herd")
    assert len(tr) == 9 and np.all(np.diff(tr["zeta"]) > 0)
    # on the random-effect scale: the estimate is theta itself
    assert pr.estimate["sd_(Intercept)|herd"] == pytest.approx(g.theta[0], rel=1e-12)
    w = g.confint(method="wald")
    assert np.isnan(w.iloc[0]).all()
    assert w.loc["Intercept", "upper"] == pytest.approx(
        g.fixef["Intercept"] + Z95 * g.fixef_se["Intercept"], rel=1e-12
    )


def test_nagq0_has_no_profile():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = _cbpp(0)
    with pytest.raises(ModelError, match="nagq=0"):
        g.confint()
    assert g.confint(method="wald").shape == (5, 2)  # Wald intervals need no profile


def test_a_dispersion_is_profiled_as_sigma():
    """lme4 refuses GLMMs with a scale; here the Gamma dispersion is profiled as
    sigma = sqrt(phi), and its limits sit on the level."""
    rng = np.random.default_rng(3)
    g = np.repeat(np.arange(30), 8)
    x = rng.normal(size=g.size)
    mu = np.exp(1.0 + 0.5 * x + rng.normal(0, 0.4, 30)[g])
    y = rng.gamma(4.0, mu / 4.0)
    fit = multilevel.fit(
        "y ~ x + (1 | g)", pd.DataFrame({"y": y, "x": x, "g": g}), family="Gamma", link="log"
    )
    ci = fit.confint(parm=["sigma", "sd_(Intercept)|g"])
    assert list(ci.index) == ["sigma", "sd_(Intercept)|g"]
    lo, hi = ci.loc["sigma"]
    assert lo < fit.sigma < hi and lo == pytest.approx(0.5, abs=0.1)
    prof = fit._profiler()
    assert abs(ZetaTrace(prof, 1).zeta(hi) - Z95) < 1e-6
