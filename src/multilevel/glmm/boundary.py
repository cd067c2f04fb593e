"""Optima on the boundary of the variance parameters, and the retries they call for.

Two cases stop a gradient method at a boundary point that is not the optimum:

* a vector random-effects term can have several boundary optima (one variance at
  0 or a correlation at +-1); the fit then repeats with lme4's thorough stage 1
  (:func:`singular_vector_term` says when);
* the deviance is even in a scalar term's theta, so at theta = 0 its derivative
  is exactly 0, and a gradient method stays there even where the likelihood
  rises for theta > 0 (0 is then a local maximum in theta): such a zero is probed
  from above (:func:`zero_scalar_probe`) and stage 2 restarted from the probe.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from ..model.spec import ModelSpec
from ..optim.optimize import SINGULAR_TOL

#: where a scalar variance ends at 0, the relative covariance factors probed above it
PROBE_THETAS = (0.01, 0.03, 0.1)


def singular_vector_term(spec: ModelSpec, theta: np.ndarray) -> bool:
    """Whether a vector term has a variance at 0 (its optimum may be one of several)."""
    tm = spec.theta_map
    diag = tm.row == tm.col
    return any(spec.groupings[b].q > 1 and theta[i] < SINGULAR_TOL for i, b in enumerate(tm.block) if diag[i])


def zero_scalar_probe(
    spec: ModelSpec, theta: np.ndarray, deviance: float, deviance_at: Callable[[np.ndarray], float]
) -> np.ndarray | None:
    """A theta with every scalar term at 0 moved to its lowest probe (``PROBE_THETAS``,
    the other parameters kept) where that lowers the deviance; None if none does.

    ``deviance_at(theta)`` is the deviance at the estimate's other parameters.
    """
    tm = spec.theta_map
    if not math.isfinite(deviance):
        return None
    zeros = [i for i, b in enumerate(tm.block) if spec.groupings[b].q == 1 and theta[i] < SINGULAR_TOL]
    out, best = theta.copy(), deviance
    for i in zeros:
        low, at = math.inf, 0.0
        for t in PROBE_THETAS:
            trial = out.copy()
            trial[i] = t
            try:
                d = deviance_at(trial)
            except (np.linalg.LinAlgError, FloatingPointError):
                continue
            if d < low:
                low, at = d, t
        if low < best - 1e-9 * abs(best):
            out[i], best = at, low
    return None if np.array_equal(out, theta) else out
