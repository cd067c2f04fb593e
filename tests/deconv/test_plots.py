"""The deconvolution pictures draw from a g-model and from a fit's groups."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

import multilevel
from multilevel.deconv.gmodel import gmodel
from multilevel.present.deconv_plots import prior_plot, shrinkage_plot


def test_prior_and_shrinkage_plots():
    rng = np.random.default_rng(0)
    y = np.where(rng.random(400) < 0.7, 0.0, 2.5) + rng.standard_normal(400)
    r = gmodel(y, grid=np.linspace(-4, 6, 61))
    fig = prior_plot(r, y, normal=(float(y.mean()), float(y.std())))
    assert len(fig.axes) == 1 and fig.axes[0].get_legend() is not None
    fig = shrinkage_plot(r, y)
    xs, ys = fig.axes[0].collections[0].get_offsets().T
    # shrinkage pulls the extremes in
    assert ys.max() < xs.max() and ys.min() > xs.min()
    with pytest.raises(ValueError, match="needs the estimates"):
        shrinkage_plot(r)


def test_plots_of_a_fit_use_its_groups():
    m = multilevel.fit("Reaction ~ Days + (1 | Subject)", multilevel.load_dataset("sleepstudy"))
    r = multilevel.deconvolve(m, method="gmodel", c0=0.1)
    assert "normal prior" in " ".join(t.get_text() for t in prior_plot(r).axes[0].get_legend().get_texts())
    assert len(shrinkage_plot(r).axes[0].collections[0].get_offsets()) == 18


def test_npmle_plots_show_its_atoms():
    rng = np.random.default_rng(1)
    y = np.where(rng.random(300) < 0.7, 0.0, 2.5) + rng.standard_normal(300)
    r = multilevel.deconvolve(y, 1.0)
    fig = prior_plot(r, y)
    assert len(fig.axes) == 2  # the atoms' masses on their own axis
    assert len(shrinkage_plot(r, y).axes[0].collections[0].get_offsets()) == 300
