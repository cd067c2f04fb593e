"""The parametric-bootstrap likelihood-ratio test of nested models (pbkrtest's ``PBmodcomp``).

Responses are simulated from the smaller (null) model at its estimates, both
models are refitted to each, and the observed statistic
``2 (logLik_big - logLik_small)`` is referred to the simulated ones:
``p = (1 + #{t* >= t}) / (1 + N)`` over the N simulations where both refits
converged. The models are the ones the likelihood-ratio table compares (REML
fits refitted by ML unless ``refit=False``), so the statistic and its reference
distribution come from the same estimator. The refits run on the fits'
``_refit_responses`` hooks: the batched engines.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelError
from .replicates import refit_columns


@dataclass(frozen=True)
class PBTest:
    """One row's bootstrap test: the p-value, the simulated statistics (NaN where a
    refit failed), how many were used, and the seed."""

    p: float
    stats: np.ndarray
    n_used: int
    seed: int

    @property
    def n_failed(self) -> int:
        return int(self.stats.size - self.n_used)


def check_nsim(n: Any) -> int:
    """The number of simulations: a positive integer."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ModelError(f"the number of bootstrap simulations must be a positive integer, got {n!r}")
    return int(n)


def pb_test(small: Any, big: Any, observed: float, n: int, seed: int, workers: int = 1) -> PBTest:
    """Simulate ``n`` responses from ``small``, refit both models (on ``workers``
    threads), compare with ``observed``."""
    Y = small.simulate(n, seed=seed).T
    rs = refit_columns(small, Y, workers)
    rb = refit_columns(big, Y, workers)
    ok = rs.converged & rb.converged
    stats = np.where(ok, np.maximum(0.0, rs.criterion - rb.criterion), np.nan)
    used = int(ok.sum())
    if used == 0:
        return PBTest(math.nan, stats, 0, seed)
    # a statistic equal to the observed one up to rounding counts as reaching it
    tol = 1e-10 * max(1.0, abs(observed))
    extreme = int(np.sum(stats[ok] >= observed - tol))
    return PBTest((1 + extreme) / (1 + used), stats, used, seed)
