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

import dataclasses
import math
import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import ConvergenceWarning, ModelError, warn
from ..model.spec import ModelSpec
from ..optim.optimize import MAXTIME, SINGULAR_TOL

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


#: where a fit's modes leave the link's domain, the fit is redone from these fractions of the start
LINK_RETRIES = (0.5, 0.25, 0.1)


def outside_link(est: Any) -> int:
    """Rows whose linear predictor at the modes is outside the link's domain."""
    return int(est.problem.rows.run("outside_link", est.pirls.state)[1])


def inside_the_link(est: Any, refit: Callable[[float], Any]) -> Any:
    """A fit whose modes put some rows outside the link's domain (a sqrt link with a
    negative linear predictor: the mirror branch of mu = eta^2, where the optimizer
    can stop at a poor optimum) is repeated by ``refit(shrink)`` from smaller starting
    variances; the lowest deviance is kept, with a warning if it is still outside."""
    if not outside_link(est):
        return est
    if MAXTIME in est.stage1.return_code or MAXTIME in est.stage2.return_code:
        return est  # out of time: the fit is reported not converged as it is
    for shrink in LINK_RETRIES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            try:
                other = refit(shrink)
            except (ModelError, np.linalg.LinAlgError, FloatingPointError):
                continue
        if other.deviance < est.deviance - 1e-9 * abs(est.deviance):
            est = other
        if MAXTIME in other.stage1.return_code or MAXTIME in other.stage2.return_code:
            # out of time before the retries ended: the best so far, reported as stopped by
            # the time limit (not converged), so the answer never depends silently on speed
            return dataclasses.replace(est, stage2=dataclasses.replace(est.stage2, return_code=MAXTIME))
        if not outside_link(est):
            return est
    link = est.problem.family.link.name
    warn(
        f"at the optimum {outside_link(est)} rows have a linear predictor outside the {link} link's "
        "domain (the mirror branch of the inverse link); the fit may be a poor local optimum: "
        "try another start= or a one-to-one link (e.g. link='log')",
        ConvergenceWarning,
    )
    return est
