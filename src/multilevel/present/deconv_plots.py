"""Pictures of a deconvolution: the estimated prior over the data, and the shrinkage.

Both read a result's ``grid`` and its prior weights (``weights`` of an NPMLE, ``g``
of a g-model) and, for the data, ``y`` and ``se`` given here or the group effects a
``deconvolve(fit)`` result carries.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .deconv import prior_weights
from .plots import _plt


def _data(result: Any, y: Any, se: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    ge = getattr(result, "group_effects", None)
    if y is None and ge is not None:
        return ge.estimate, ge.se
    return (None if y is None else np.asarray(y, dtype=float)), (
        None if se is None else np.asarray(se, float)
    )


def _smooth(grid: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The prior's mass spread by a Gaussian kernel of a few grid steps (a density to read)."""
    step = float(np.median(np.diff(grid))) if grid.size > 1 else 1.0
    bw = 4.0 * step
    k = np.exp(-0.5 * ((grid[:, None] - grid[None, :]) / bw) ** 2) / (bw * np.sqrt(2 * np.pi))
    return k @ w


def prior_plot(
    result: Any, y: Any = None, se: Any = None, *, normal: tuple[float, float] | None = None
) -> Any:
    """The estimated prior: its atoms (stems, mass on the right axis) and a smoothed
    density over the histogram of the data; with ``normal=(mean, sd)`` (or a fit's
    group effects) the normal prior a mixed model assumes beside it.

    >>> import numpy as np
    >>> from multilevel.deconv.gmodel import gmodel
    >>> rng = np.random.default_rng(0)
    >>> y = rng.normal(0, 1.5, 300)
    >>> fig = prior_plot(gmodel(y, grid=np.linspace(-5, 5, 51)), y)  # a g-model: a density, no atoms
    >>> fig.axes[0].get_xlabel()
    'theta'
    """
    plt = _plt()
    grid, w = prior_weights(result)
    yv, _ = _data(result, y, se)
    fig, ax = plt.subplots(figsize=(6.4, 3.8))
    if yv is not None:
        ax.hist(yv, bins=min(60, max(10, yv.size // 10)), density=True, color="#d9d9d9", label="data")
    atoms = hasattr(result, "weights")  # an NPMLE: discrete; a g-model: already smooth
    step = float(np.median(np.diff(grid))) if grid.size > 1 else 1.0
    dens, label = (_smooth(grid, w), "estimated prior (smoothed)") if atoms else (w / step, "estimated prior")
    ax.plot(grid, dens, color="#1f4e79", linewidth=1.6, label=label)
    ge = getattr(result, "group_effects", None)
    if normal is None and ge is not None:
        normal = (0.0, ge.tau)
    if normal is not None:
        mu, sd = normal
        ax.plot(grid, np.exp(-0.5 * ((grid - mu) / sd) ** 2) / (sd * np.sqrt(2 * np.pi)), color="#c55a11",
                linestyle="--", linewidth=1.2, label=f"normal prior N({mu:.3g}, {sd:.3g}^2)")  # fmt: skip
    if atoms:
        mass = ax.twinx()
        keep = w > 1e-6 * w.max()
        mass.vlines(grid[keep], 0, w[keep], color="#2e75b6", linewidth=1.5, alpha=0.8)
        mass.set_ylabel("prior mass of each atom")
        mass.set_ylim(bottom=0)
    ax.set_xlabel("theta")
    ax.set_ylabel("density")
    ax.legend(loc="upper left", fontsize=8, frameon=False)
    fig.tight_layout()
    return fig


def shrinkage_plot(result: Any, y: Any = None, se: Any = None) -> Any:
    """Each estimate against its posterior mean under the estimated prior (the result's
    ``posterior_mean()``), sized by its SE (the larger the SE, the more it is pulled),
    with the line y = x. ``y`` and ``se``: the data the result was fitted to (a
    ``deconvolve(fit)`` result carries them)."""
    plt = _plt()
    yv, sv = _data(result, y, se)
    if yv is None:
        raise ValueError("shrinkage_plot needs the estimates the prior was fitted to (y=)")
    post = np.asarray(result.posterior_mean(), dtype=float)
    s = np.ones_like(yv) if sv is None else np.broadcast_to(sv, yv.shape)
    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    ax.scatter(yv, post, s=10 + 60 * (s / s.max()), color="#1f4e79", alpha=0.6, edgecolor="none")
    lo, hi = float(min(yv.min(), post.min())), float(max(yv.max(), post.max()))
    ax.plot([lo, hi], [lo, hi], color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel("estimate")
    ax.set_ylabel("posterior mean under the estimated prior")
    fig.tight_layout()
    return fig
