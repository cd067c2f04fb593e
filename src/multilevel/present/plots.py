"""Pictures of likelihood fits: caterpillar, shrinkage and residual plots (profile zeta
plots are :mod:`multilevel.present.profile_plots`).

Each function takes a fit and returns a matplotlib figure; matplotlib is imported
only here, so ``import multilevel`` stays light. Fits expose them as methods
(``fit.plot_caterpillar()`` and so on).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import stats


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def caterpillar_figure(
    title: str,
    levels: Any,
    terms: list[str],
    mid: np.ndarray,
    lo: np.ndarray,
    hi: np.ndarray,
    *,
    xlabel: str,
    color: str = "#1f4e79",
    ecolor: str = "#7f9fbf",
) -> Any:
    """One panel per term: levels sorted by ``mid`` (levels, terms) with intervals [lo, hi]."""
    plt = _plt()
    n = len(levels)
    fig, axes = plt.subplots(1, len(terms), figsize=(3.2 * len(terms) + 1, max(3.0, 0.16 * n + 1)))
    axes = np.atleast_1d(axes)
    ypos = np.arange(n)
    for j, (ax, term) in enumerate(zip(axes, terms)):
        order = np.argsort(mid[:, j])
        m = mid[order, j]
        xerr = [m - lo[order, j], hi[order, j] - m]
        ax.errorbar(m, ypos, xerr=xerr, fmt="o", markersize=3, color=color, ecolor=ecolor, capsize=0)
        ax.axvline(0, color="grey", linewidth=0.8)
        ax.set_yticks(ypos)
        ax.set_yticklabels(np.asarray(levels)[order], fontsize=7 if n > 30 else 9)
        ax.set_title(term)
        ax.set_xlabel(xlabel)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def caterpillar(fit: Any, group: str | None = None, *, level: float = 0.95) -> Any:
    """Conditional modes of one grouping factor's effects, sorted, with intervals
    of +-z conditional SDs (one panel per term)."""
    name = group or fit.spec.groupings[0].name
    if name not in fit.ranef:
        raise KeyError(f"no grouping factor {name!r}; choose one of {', '.join(fit.ranef)}")
    modes, sds = fit.ranef[name], fit.ranef_sd[name]
    z = stats.norm.ppf(0.5 + level / 2)
    m, s = modes.to_numpy(), sds.to_numpy()
    return caterpillar_figure(
        f"{name}: group effects with {round(100 * level)}% intervals",
        modes.index,
        list(modes.columns),
        m,
        m - z * s,
        m + z * s,
        xlabel="conditional mode",
    )


def shrinkage(fit: Any, group: str | None = None) -> Any:
    """Gelman & Hill's picture of partial pooling for a random intercept: per group, the
    no-pooling estimate (the group's own mean residual from the fixed part) against
    the partial-pooling estimate (the conditional mode), with the complete-pooling
    line (no group effect) and the identity line."""
    plt = _plt()
    name = group or fit.spec.groupings[0].name
    gi = [g.name for g in fit.spec.groupings].index(name)
    g = fit.spec.groupings[gi]
    if "Intercept" not in g.columns:
        raise ValueError(f"the shrinkage plot needs a random intercept for {name!r}")
    codes = fit.design.groups[gi].codes
    y = fit.design.y
    fixed = fit.design.X @ fit.fixef.to_numpy()
    if fit.design.offset is not None:
        fixed = fixed + fit.design.offset
    if hasattr(fit, "family") and not fit.family.is_lmm:
        raise ValueError("the shrinkage plot is drawn for linear mixed models")
    resid = y - fixed
    counts = np.bincount(codes, minlength=g.n_levels)
    no_pool = np.bincount(codes, weights=resid, minlength=g.n_levels) / np.maximum(counts, 1)
    partial = fit.ranef[name]["Intercept"].to_numpy()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    sc = ax.scatter(no_pool, partial, c=counts, cmap="viridis", s=25, zorder=3)
    lim = [min(no_pool.min(), partial.min()), max(no_pool.max(), partial.max())]
    ax.plot(lim, lim, color="grey", linestyle="--", linewidth=1, label="no pooling (identity)")
    ax.axhline(0, color="black", linewidth=1, label="complete pooling")
    ax.set_xlabel("no-pooling estimate (group mean residual)")
    ax.set_ylabel("partial-pooling estimate (conditional mode)")
    ax.set_title(f"{name}: shrinkage of group intercepts")
    fig.colorbar(sc, ax=ax, label="observations in group")
    ax.legend(frameon=False, loc="upper left")
    fig.tight_layout()
    return fig


def residuals(fit: Any) -> Any:
    """Fitted against residuals, a normal QQ plot of the residuals, and one of the
    first grouping factor's effects."""
    plt = _plt()
    fitted = fit.fitted
    res = fit.residuals
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.8))
    axes[0].scatter(fitted, res, s=8, alpha=0.6)
    axes[0].axhline(0, color="grey", linewidth=1)
    axes[0].set_xlabel("fitted")
    axes[0].set_ylabel("residual")
    axes[0].set_title("residuals vs fitted")
    for ax, values, title in (
        (axes[1], res, "QQ: residuals"),
        (
            axes[2],
            fit.ranef[fit.spec.groupings[0].name].iloc[:, 0].to_numpy(),
            f"QQ: {fit.spec.groupings[0].name} effects",
        ),
    ):
        (osm, osr), (slope, intercept, _) = stats.probplot(values, dist="norm")
        ax.scatter(osm, osr, s=10)
        ax.plot(osm, slope * np.asarray(osm) + intercept, color="grey", linewidth=1)
        ax.set_xlabel("normal quantile")
        ax.set_ylabel("sample quantile")
        ax.set_title(title)
    fig.tight_layout()
    return fig
