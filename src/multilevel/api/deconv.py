"""Deconvolution: the distribution of true effects behind noisy estimates.

``deconvolve(y, se)`` estimates the mixing distribution of ``y_i ~ p(y | theta_i)``
nonparametrically (the Kiefer-Wolfowitz NPMLE, :mod:`multilevel.deconv.npmle`) or as
a smooth log-spline prior (Efron's g-modeling, :mod:`multilevel.deconv.gmodel`).
``deconvolve(fit)`` does it for a fitted mixed model's group effects: each group's
unshrunk estimate and its SE (:mod:`multilevel.model.group_effects`), set against
the normal distribution the model assumed.
"""

from __future__ import annotations

from typing import Any

from ..errors import ModelError

METHODS = ("npmle", "gmodel")


def deconvolve(
    y: Any,
    se: Any = None,
    *,
    family: str = "gaussian",
    trials: Any = None,
    method: str = "npmle",
    grid: Any = None,
    grouping: str | None = None,
    **options: Any,
) -> Any:
    """Estimate the distribution of the true effects behind ``y`` (or a fit's groups).

    Parameters
    ----------
    y:
        Estimates (numbers), or a mixed-model fit: its grouping factor's unshrunk group
        estimates and SEs are deconvolved (one scalar random effect; ``grouping=``
        names it when there are several).
    se:
        Known standard errors (Gaussian), one or one per estimate.
    family, trials:
        ``"gaussian"`` (default), ``"poisson"`` or ``"binomial"`` (with ``trials=``).
    method:
        ``"npmle"`` (default): the nonparametric maximum-likelihood prior;
        ``"gmodel"``: Efron's smooth log-spline prior with delta-method SEs.
    grid:
        The support grid (default: from the data).

    Examples
    --------
    >>> import multilevel
    >>> m = multilevel.fit("Reaction ~ Days + (1 | Subject)", multilevel.load_dataset("sleepstudy"))
    >>> r = multilevel.deconvolve(m, method="gmodel")
    >>> r.converged, r.group_effects.grouping
    (True, 'Subject')
    """
    import dataclasses

    if method not in METHODS:
        raise ModelError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    effects = None
    if hasattr(y, "spec") and hasattr(y, "condvar"):
        from ..model.group_effects import group_effects

        if se is not None:
            raise ModelError("a fit brings its own SEs (the groups' conditional SDs): drop se=")
        effects = group_effects(y, grouping)
        y, se, family = effects.estimate, effects.se, "gaussian"
    out: Any
    if method == "gmodel":
        from ..deconv.gmodel import gmodel

        out = gmodel(y, family=family, se=se, trials=trials, grid=grid, **options)
    else:
        from ..deconv import npmle

        out = npmle(y, se=se, family=family, trials=trials, grid=grid, **options)
    if effects is None:
        return out
    return dataclasses.replace(out, group_effects=effects)
