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
from typing import Any, NamedTuple

import numpy as np

from ..control import FitControl
from ..linalg import one_block, one_block_compiled
from ..linalg.crossprod import DENSE_A1R_MAX, as_dense
from ..linalg.factor import Factor
from .inference import ConvergenceCheck, convergence_verdict
from .objective import LmmObjective
from .solution import Solution
from .start import MAX_START, MIN_START, moment_start

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
    start: np.ndarray
    # the compiled kernels' factor and solution at the optimum (None: the caller's NumPy)
    final: tuple[Factor, Solution, np.ndarray] | None


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


def _kernels(obj: LmmObjective, control: FitControl) -> Any:
    lay = obj.cp.layout
    use = control.compiled_kernels
    if use is None and not control.use_compiled_kernels:
        use = False  # MULTILEVEL_NUMBA=0
    return one_block_compiled.kernels(lay.n1 * lay.q1**3, use)


def _start(obj: LmmObjective, kernels: Any, args: tuple) -> np.ndarray:
    """:func:`multilevel.lmm.start.moment_start` (compiled: the kernel's, on one block)."""
    spec = obj.spec
    if kernels is one_block:
        return moment_start(spec, obj.cp)
    tm = spec.theta_map
    x0 = tm.initial()
    g = spec.groupings[0]
    if "Intercept" in g.columns:
        a = g.columns.index("Intercept")
        k = int(np.flatnonzero((tm.row == a) & (tm.col == a))[0])
        kernels.moment_start(x0, k, a, *args[2:6], MIN_START, MAX_START)
    return x0


def _final(obj: LmmObjective, theta: np.ndarray, out: tuple) -> tuple[Factor, Solution, np.ndarray]:
    """The factor, the solution and ``vcov(beta)`` at ``theta`` from the compiled kernels'
    outputs."""
    L1, LS, beta, u, Cinv, stats = out
    T = obj.spec.templates(theta)[0]
    f = Factor((T,), L1, LS, float(stats[0]), float(stats[1]), float(stats[2]))
    sol = Solution(beta=beta, u=[u], b=[u @ T.T], sigma=obj.sigma(f))
    return f, sol, sol.sigma**2 * Cinv


def fit(obj: LmmObjective, x0: np.ndarray | None, control: FitControl) -> OneBlockFit | None:
    """BFGS from ``x0`` (None: the moment start); None when the search fails (not
    finite, no convergence)."""
    cp = obj.cp
    lay = cp.layout
    tm = obj.spec.theta_map
    kernels = _kernels(obj, control)
    compiled = kernels is not one_block
    args = (
        tm.row,
        tm.col,
        cp.A11,
        as_dense(cp.A1R).reshape(lay.n1, lay.q1, lay.p + 1),
        cp.ARR,
        float(cp.n),
        bool(obj.reml),
        float(cp.sum_log_weights),
    )
    t0 = time.perf_counter()
    start = _start(obj, kernels, args) if x0 is None else np.asarray(x0, dtype=float)
    theta = start.copy()
    k, n1, q, p = theta.size, lay.n1, lay.q1, lay.p
    g, H = np.empty(k), np.empty((k, k))
    out = (
        np.empty((n1, q, q)),
        np.empty((p + 1, p + 1)),
        np.empty(p),
        np.empty((n1, q)),
        np.empty((p, p)),
        np.zeros(4),
    )
    fval, n_evals, code = kernels.minimize(theta, args, GTOL, MAX_ITER, g, H, compiled, *out)
    if code != one_block.CONVERGED or not np.isfinite(fval) or not np.all(np.isfinite(H)):
        return None
    seconds = time.perf_counter() - t0
    check = convergence_verdict(theta, g, H, tm.lower_bounds, newton_step=float(out[-1][3]))
    final = _final(obj, theta, out) if compiled else None
    return OneBlockFit(theta, float(fval), int(n_evals), seconds, compiled, check, start, final)
