"""The fit of a one-block LMM on the analytic gradient (:mod:`multilevel.linalg.one_block`).

A model with a single grouping block (any number of its terms) and no known
residual SEs is optimized by BFGS on the analytic gradient of the profiled
criterion, directly on the per-level cross-products: a few dozen evaluations
where BOBYQA takes ~75, interpreted in NumPy on a process's first fits and
compiled by Numba afterwards (:mod:`multilevel.linalg.one_block_compiled`). The
gradient and the Hessian at the optimum (forward differences of the gradient)
come from the same kernels and go to the same convergence verdict as
BOBYQA's (:func:`multilevel.lmm.inference.convergence_verdict`). A search that
does not converge is handed to BOBYQA by the caller.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np

from ..control import FitControl
from ..linalg import one_block, one_block_compiled
from ..linalg.crossprod import DENSE_A1R_MAX, as_dense
from .inference import ConvergenceCheck, convergence_verdict
from .objective import LmmObjective

#: gradient size (criterion units) below which the search has converged
GTOL = 1e-6
MAX_ITER = 200


class OneBlockFit(NamedTuple):
    theta: np.ndarray
    fval: float
    n_evals: int
    seconds: float
    compiled: bool
    check: ConvergenceCheck


def applies(obj: LmmObjective) -> bool:
    """One grouping block, NumPy backend, residual scale profiled, ``A1R`` that fits
    densely (as the in-memory cross-products of such a model always do)."""
    cp = obj.cp
    lay = cp.layout
    return (
        obj.backend.NAME == "numpy"
        and not lay.rest
        and obj.sigma_fixed is None
        and lay.n1 * lay.q1 * lay.m <= DENSE_A1R_MAX
        and obj.spec.theta_map.size > 0
    )


def fit(obj: LmmObjective, x0: np.ndarray, control: FitControl) -> OneBlockFit | None:
    """BFGS from ``x0``; None when the search fails (not finite, no convergence)."""
    cp = obj.cp
    lay = cp.layout
    tm = obj.spec.theta_map
    work = lay.n1 * lay.q1**3
    use = control.compiled_kernels
    if use is None and not control.use_compiled_kernels:
        use = False  # MULTILEVEL_NUMBA=0
    kernels = one_block_compiled.kernels(work, use)
    compiled = kernels is not one_block
    args = (
        tm.row.astype(np.int64),
        tm.col.astype(np.int64),
        cp.A11,
        as_dense(cp.A1R).reshape(lay.n1, lay.q1, lay.p + 1),
        cp.ARR,
        float(cp.n),
        bool(obj.reml),
        float(cp.sum_log_weights),
    )
    t0 = time.perf_counter()
    theta = np.array(x0, dtype=float)
    g = np.empty(theta.size)
    H = np.empty((theta.size, theta.size))
    fval, n_evals, code = kernels.minimize(theta, *args, GTOL, MAX_ITER, g, H)
    if code != one_block.CONVERGED or not np.isfinite(fval) or not np.all(np.isfinite(H)):
        return None
    seconds = time.perf_counter() - t0
    check = convergence_verdict(theta, g, H, tm.lower_bounds)
    return OneBlockFit(theta, float(fval), int(n_evals), seconds, compiled, check)
