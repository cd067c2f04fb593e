"""Plots of likelihood fits draw the right number of elements."""

import warnings

import numpy as np
import pytest

import multilevel

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def sleep_fit():
    return multilevel.fit("Reaction ~ Days + (Days | Subject)", multilevel.load_dataset("sleepstudy"))


def test_caterpillar(sleep_fit):
    fig = sleep_fit.plot_caterpillar()
    assert len(fig.axes) == 2  # one panel per term
    ax = fig.axes[0]
    assert len(ax.get_yticklabels()) == 18
    # the points are the sorted conditional modes of the intercept
    np.testing.assert_allclose(
        ax.lines[0].get_xdata(), np.sort(sleep_fit.ranef["Subject"]["Intercept"].to_numpy())
    )


def test_shrinkage_points_and_lines():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = multilevel.fit("log_radon ~ basement + (1 | county)", multilevel.load_dataset("radon"))
    fig = m.plot_shrinkage()
    ax = fig.axes[0]
    assert ax.collections[0].get_offsets().shape == (85, 2)  # one point per county
    assert len(ax.get_lines()) == 2  # identity and complete pooling
    pts = ax.collections[0].get_offsets()
    # partial pooling shrinks: conditional modes are less spread than the raw group means
    assert np.std(pts[:, 1]) < np.std(pts[:, 0])


def test_residual_panels(sleep_fit):
    fig = sleep_fit.plot_residuals()
    assert len(fig.axes) == 3
    assert fig.axes[0].collections[0].get_offsets().shape[0] == 180
    assert fig.axes[2].collections[0].get_offsets().shape[0] == 18


def test_glmm_caterpillar_and_graph():
    m = multilevel.fit(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)",
        multilevel.load_dataset("cbpp"),
        family="binomial",
    )
    fig = m.plot_caterpillar("herd")
    assert len(fig.axes[0].get_yticklabels()) == 15
    with pytest.raises(KeyError):
        m.plot_caterpillar("nope")
    assert m.graph().plate("herd").size == 15


def test_profile_plot_draws_zeta_for_every_parameter():
    m = multilevel.fit("Yield ~ 1 + (1 | Batch)", multilevel.load_dataset("Dyestuff"))
    fig = m.plot_profile(points=6)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in visible] == ["sd_(Intercept)|Batch", "sigma", "Intercept"]
    x, y = visible[1].get_lines()[0].get_data()
    assert len(x) == 13  # six points on each side and the estimate
    assert np.all(np.diff(y) > 0)  # zeta increases through 0 at the estimate
    # zeta is 0 at the ML estimate (lme4 profiles REML fits on the ML deviance)
    assert y[6] == 0 and abs(x[6] - m.profile("sigma").estimate["sigma"]) < 1e-6
    # the 95% cutoff is crossed on both sides: the traces reach lme4's alphamax cutoff
    assert y[0] < -1.96 and y[-1] > 1.96
    # one panel for one parameter, by name or position
    assert len([a for a in m.plot_profile("sigma").axes if a.get_visible()]) == 1
    assert m.plot_profile(0).axes[0].get_title() == "sd_(Intercept)|Batch"
