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
    offsets = ax.collections[-1] if ax.collections else None
    assert offsets is not None


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
