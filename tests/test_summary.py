"""lme4's summary parts: the Data line, the correlation of fixed effects, Wald intervals."""

import numpy as np
import pandas as pd
import pytest

import multilevel
from multilevel.present.text import abbreviate


@pytest.fixture(scope="module")
def sleep_fit():
    return multilevel.fit("Reaction ~ Days + (Days | Subject)", multilevel.load_dataset("sleepstudy"))


def test_data_line_names_the_bundled_dataset_or_says_data(sleep_fit):
    assert "\n   Data: sleepstudy\n" in sleep_fit.summary()
    frame = pd.DataFrame(multilevel.load_dataset("sleepstudy"))
    frame.attrs.clear()
    m = multilevel.fit("Reaction ~ Days + (Days | Subject)", frame)
    assert "\n   Data: data\n" in m.summary()


def test_correlation_of_fixed_effects_as_lme4_prints_it(sleep_fit):
    # lme4: Correlation of Fixed Effects: (Intr) / Days -0.138
    text = sleep_fit.summary()
    block = text[text.index("Correlation of Fixed Effects:") :].splitlines()
    assert block[1].split() == ["Intrcp"]
    assert block[2].split() == ["Days", "-0.138"]
    V = sleep_fit.vcov.to_numpy()
    assert V[0, 1] / np.sqrt(V[0, 0] * V[1, 1]) == pytest.approx(-0.1376, abs=5e-4)


def test_wald_interval_columns(sleep_fit):
    ct = sleep_fit.coef_table
    z = 1.959963984540054
    np.testing.assert_allclose(ct["2.5 %"], ct["Estimate"] - z * ct["Std. Error"], rtol=1e-12)
    np.testing.assert_allclose(ct["97.5 %"], ct["Estimate"] + z * ct["Std. Error"], rtol=1e-12)
    # lme4 confint(m, method = "Wald"): Days 7.437592 13.496980
    assert ct.loc["Days", ["2.5 %", "97.5 %"]].tolist() == pytest.approx([7.437592, 13.49698], abs=2e-5)
    g = multilevel.fit(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)",
        multilevel.load_dataset("cbpp"),
        family="binomial",
    )
    assert {"2.5 %", "97.5 %"} <= set(g.coef_table.columns)
    assert "Correlation of Fixed Effects:" in g.summary()


def test_abbreviate_follows_r():
    assert abbreviate("(Intercept)") == "(Intr)"
    assert abbreviate("Days") == "Days"
    assert abbreviate("Intercept") == "Intrcp"


def test_many_fixed_effects_do_not_print_the_matrix():
    rng = np.random.default_rng(0)
    n = 200
    d = pd.DataFrame(rng.normal(size=(n, 13)), columns=[f"x{i}" for i in range(13)])
    d["g"] = np.arange(n) % 10
    d["y"] = rng.normal(size=n) + rng.normal(size=10)[d["g"]]
    m = multilevel.fit("y ~ " + " + ".join(d.columns[:13]) + " + (1 | g)", d)
    assert "Correlation matrix not shown by default, as p = 14 > 12" in m.summary()


def test_repr_is_one_line():
    import multilevel

    m = multilevel.fit("Reaction ~ Days + (Days | Subject)", multilevel.load_dataset("sleepstudy"))
    want = (
        "<LmmFit: Reaction ~ Days + (Days | Subject); 180 observations; REML criterion 1743.6283; converged>"
    )
    assert repr(m) == want
