"""Pictures of a posterior: group effects, modes against expectations, traces and ranks.

matplotlib (and ArviZ's plotting) is imported only when a picture is asked for.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .plots import _plt, caterpillar_figure


def caterpillar(post: Any, group: str | None = None, *, prob: float = 0.95) -> Any:
    """Posterior means of one grouping factor's effects, sorted, with central intervals."""
    groups = {g.name: (k, g) for k, g in enumerate(post.structure.groups)}
    name = group or next(iter(groups))
    if name not in groups:
        raise KeyError(f"no grouping factor {name!r}; choose one of {', '.join(groups)}")
    k, g = groups[name]
    draws = post.group_effects[k].reshape(-1, g.n_levels, g.q)
    lo, hi = np.quantile(draws, [(1 - prob) / 2, (1 + prob) / 2], axis=0)
    return caterpillar_figure(
        f"{name}: group effects with {round(100 * prob)}% posterior intervals",
        g.levels,
        list(g.columns),
        draws.mean(axis=0),
        lo,
        hi,
        xlabel="posterior mean",
        color="#7b2d26",
        ecolor="#d9a59f",
    )


def point_estimates(post: Any, params: list[str] | None = None, *, prob: float = 0.95) -> Any:
    """One panel per parameter: the posterior density with its central interval, and the
    likelihood estimate, the MAP, the mean and the median marked on it."""
    plt = _plt()
    table = post.point_estimates(prob=prob)
    method = table.attrs["method"]
    names = params or list(table.index)
    draws = post.draws(group_effects=False)
    missing = [n for n in names if n not in draws]
    if missing:
        raise KeyError(f"no parameter {missing[0]!r}; choose from {', '.join(draws)}")
    cols = min(3, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    lo_col, hi_col = table.columns[4], table.columns[5]
    marks = [
        (method, "#1f4e79", "-"),
        ("MAP", "#c0392b", "--"),
        ("mean", "#222222", "-"),
        ("median", "#7f7f7f", ":"),
    ]
    for ax, name in zip(axes.ravel(), names):
        x = draws[name].ravel()
        x = x[np.isfinite(x)]
        ax.hist(x, bins=60, density=True, color="#d5dde8", edgecolor="none")
        ax.axvspan(table.at[name, lo_col], table.at[name, hi_col], color="#f0a030", alpha=0.15, lw=0)
        for label, color, style in marks:
            v = table.at[name, label]
            if np.isfinite(v):
                ax.axvline(v, color=color, linestyle=style, linewidth=1.6, label=f"{label} {v:.3g}")
        ax.set_title(name + ("  (mode outside interval)" if "MAP outside" in table.at[name, "flag"] else ""))
        ax.set_yticks([])
        ax.legend(fontsize=7, frameon=False)
    for ax in axes.ravel()[len(names) :]:
        ax.set_visible(False)
    fig.suptitle(
        f"Posterior with {method} estimate, MAP, mean and median; shaded: {round(100 * prob)}% interval"
    )
    fig.tight_layout()
    return fig


def _arviz_figure(axes: Any) -> Any:
    return np.asarray(axes).ravel()[0].figure


def trace(post: Any, var_names: list[str] | None = None) -> Any:
    """ArviZ trace plot (densities per chain and traces) of the population-level parameters."""
    import arviz as az

    _plt()
    names = var_names or [v for v in post.inference_data.posterior.data_vars if not v.startswith("r_")]
    return _arviz_figure(az.plot_trace(post.inference_data, var_names=names, compact=True))


def rank(post: Any, var_names: list[str] | None = None) -> Any:
    """ArviZ rank plots: rank histograms per chain (uniform when the chains agree)."""
    import arviz as az

    _plt()
    names = var_names or [v for v in post.inference_data.posterior.data_vars if not v.startswith("r_")]
    return _arviz_figure(az.plot_rank(post.inference_data, var_names=names))
