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


def test_profile_has_its_minimum_at_the_estimate():
    m = multilevel.fit("Yield ~ 1 + (1 | Batch)", multilevel.load_dataset("Dyestuff"))
    fig = m.plot_profile(points=15)
    x, y = fig.axes[0].get_lines()[0].get_data()
    assert len(x) == 15 and y.min() >= -1e-8
    sd = m.varcorr.sd_or_corr.iloc[0]
    assert abs(x[np.argmin(y)] - sd) <= (x[1] - x[0])  # lowest point next to the estimate
    # the 95% cutoff (3.84) is crossed on both sides of the estimate
    assert y[0] > 3.84 or x[0] == 0
    assert y[-1] > 3.84
