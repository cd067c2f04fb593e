"""Acceptance: eight schools, posterior expectations against the reference, modes beside them."""

import warnings

import numpy as np
import pytest

import multilevel

# ../shared/reference/README.md: posteriordb eight_schools_noncentered, 10,000 Stan draws
REF = {"Intercept": (4.41, 3.31), "sd_school__Intercept": (3.60, 3.20)}
REF_DRAWS = 10_000


@pytest.fixture(scope="module")
def post():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p = multilevel.sample(
            "y | se(sigma) ~ 1 + (1 | school)",
            multilevel.load_dataset("eight_schools"),
            priors={"Intercept": "normal(0, 5)", "sd": "cauchy(0, 5)"},
            progress=False,
        )
    p.caught = [str(w.message) for w in caught if "Sampling" in type(w.message).__name__]
    return p


def test_posterior_means_match_the_reference_within_three_mc_errors(post):
    s = post.summary(group_effects=False)
    for name, (mean, sd) in REF.items():
        mcse = np.hypot(s.at[name, "mcse_mean"], sd / np.sqrt(REF_DRAWS))
        assert abs(s.at[name, "mean"] - mean) < 3 * mcse, (name, s.at[name, "mean"], mcse)
    assert s["r_hat"].max() < 1.01


def test_default_settings_give_no_divergences_and_no_warnings(post):
    assert post.settings["chains"] == 4 and post.settings["draws"] == 1000
    assert post.divergences == 0
    assert post.caught == [] and post.messages == ()


def test_point_estimates_show_the_mode_far_from_the_mean(post):
    pe = post.point_estimates()
    tau = pe.loc["sd_school__Intercept"]
    assert tau["REML"] == 0.0
    assert tau["MAP"] < 1e-3
    assert 3.2 < tau["mean"] < 4.0
    assert tau["q2.5"] > tau["MAP"]
    assert "MAP outside interval" in tau["flag"] and "REML outside interval" in tau["flag"]
    mu = pe.loc["Intercept"]
    assert mu["flag"] == ""
    d = multilevel.load_dataset("eight_schools")
    w = d.sigma.to_numpy() ** -2.0
    assert mu["REML"] == pytest.approx(
        np.sum(w * d.y) / np.sum(w), rel=1e-6
    )  # tau = 0: precision-weighted mean


def test_group_effects_and_their_names(post):
    s = post.summary()
    assert "r_school[A,Intercept]" in s.index
    assert list(post.summary(group_effects=False).index) == ["Intercept", "sd_school__Intercept"]
    # school A's effect is shrunk from its raw 28 - mu towards 0
    assert 0 < s.at["r_school[A,Intercept]", "mean"] < 28 - s.at["Intercept", "mean"]
    text = str(post)
    assert "cauchy(0, 5) [truncated at 0]" in text and "Divergent transitions: 0" in text
