"""Each group's own estimate of its effect, unshrunk, from a fitted mixed model.

A random intercept's conditional mode is its group's own estimate pulled toward 0:
with prior variance ``tau^2`` and the group's sampling variance ``s_g^2``, the
conditional variance is ``v_g = (1 / tau^2 + 1 / s_g^2)^-1`` and the mode
``B_g`` times the group's own estimate, ``B_g = tau^2 / (tau^2 + s_g^2) = 1 - v_g / tau^2``.
So the modes and conditional variances give back ``s_g^2 = v_g tau^2 / (tau^2 - v_g)``
and the unshrunk estimate ``mode / B_g``: the data a deconvolution of the group
effects needs (``y_g ~ N(b_g, s_g^2)``, exact for a linear model given beta and the
variance parameters; the Laplace approximation's for a GLMM).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelError


@dataclass(frozen=True)
class GroupEffects:
    """Per level of one grouping factor: the unshrunk estimate and its SE, the
    conditional mode, and the fitted (normal) SD of the effects."""

    grouping: str
    levels: tuple[str, ...]
    estimate: np.ndarray
    se: np.ndarray
    mode: np.ndarray
    tau: float


def group_effects(fit: Any, grouping: str | None = None) -> GroupEffects:
    """The unshrunk group estimates of a fit's scalar random effect (see the module docstring)."""
    scalar = [g for g in fit.spec.groupings if g.q == 1]
    if grouping is None:
        if len(fit.spec.groupings) != 1 or not scalar:
            names = ", ".join(g.name for g in fit.spec.groupings)
            raise ModelError(
                f"the fit has grouping factors {names}: name the one to deconvolve (grouping=), "
                "which must have a single random effect"
            )
        g = scalar[0]
    else:
        match = [x for x in fit.spec.groupings if x.name == grouping]
        if not match:
            have = [x.name for x in fit.spec.groupings]
            raise ModelError(f"no grouping factor {grouping!r}; the fit has {have}")
        g = match[0]
        if g.q != 1:
            raise ModelError(f"{grouping} has {g.q} random effects per level; deconvolution takes one")
    tau2 = float(fit.covariances[g.name].to_numpy()[0, 0])
    if tau2 <= 0:
        raise ModelError(
            f"the fitted variance of {g.name} is 0: every mode is 0 and there is nothing to deconvolve"
        )
    mode = fit.ranef[g.name].iloc[:, 0].to_numpy(dtype=float)
    v = fit.condvar[g.name][:, 0, 0]
    B = np.clip(1.0 - v / tau2, 1e-12, 1.0)
    se = np.sqrt(v / B)
    levels = tuple(str(x) for x in fit.ranef[g.name].index)
    return GroupEffects(g.name, levels, mode / B, se, mode, float(np.sqrt(tau2)))
