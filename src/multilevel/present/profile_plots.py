"""lme4's profile zeta plots: zeta against each parameter, with the interval limits.

For a parameter whose likelihood is quadratic the trace is a straight line
(zeta = (p - p_hat) / SE); curvature shows where Wald intervals would mislead.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import special

from ..model.profile import Profile
from .plots import _plt


def zeta_plot(profile: Profile, *, level: float = 0.95) -> Any:
    """One panel per profiled parameter: zeta against the parameter's value (the
    profile points, joined), the estimate, dashed lines at zeta = -+ z for ``level``
    and the profile interval's limits where the trace meets them (matplotlib figure).

    >>> import multilevel
    >>> m = multilevel.fit("Yield ~ 1 + (1 | Batch)", multilevel.load_dataset("Dyestuff"))
    >>> [ax.get_title() for ax in zeta_plot(m.profile(points=3)).axes]
    ['sd_(Intercept)|Batch', 'sigma', 'Intercept']
    """
    plt = _plt()
    names = profile.names
    ncol = min(3, len(names))
    nrow = math.ceil(len(names) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.4 * ncol, 2.8 * nrow), squeeze=False)
    z = float(special.ndtri(0.5 + level / 2.0))
    ci = profile.confint(level)
    for ax, name in zip(axes.ravel(), names):
        tr = profile.zeta(name)
        ax.plot(tr["value"], tr["zeta"], marker="o", markersize=2.5, color="#1f4e79", linewidth=1.2)
        ax.axvline(float(profile.estimate[name]), color="grey", linewidth=0.6)
        for sign in (-1, 1):
            ax.axhline(sign * z, color="grey", linestyle="--", linewidth=0.8)
        lo, hi = ci.loc[name, "lower"], ci.loc[name, "upper"]
        for x, sign in ((lo, -1), (hi, 1)):
            if np.isfinite(float(x)):  # type: ignore[arg-type]
                ax.plot([x, x], [0, sign * z], color="#b22222", linewidth=0.8)
        ax.axhline(0, color="black", linewidth=0.5)
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("zeta")
    for ax in axes.ravel()[len(names) :]:
        ax.set_visible(False)
    fig.suptitle(f"profile zeta with {round(100 * level)}% limits")
    fig.tight_layout()
    return fig
