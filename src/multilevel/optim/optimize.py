"""Bounded derivative-free minimization (BOBYQA) and the optimizer record.

BOBYQA comes from NLopt (the same algorithm and library as lme4's default
``nloptwrap``). Every fit carries an :class:`OptSummary`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: a template diagonal below this at the optimum makes the fit singular (a variance
#: at 0 or a correlation at +-1): ``OptSummary.singular``, for every method
SINGULAR_TOL = 1e-4


@dataclass(frozen=True)
class OptSummary:
    """What the optimizer did: start and end, evaluations, time and verdict."""

    optimizer: str
    start: tuple[float, ...]
    end: tuple[float, ...]
    fval: float
    n_evals: int
    seconds: float
    return_code: str
    converged: bool = True
    singular: bool = False
    messages: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {
            "optimizer": self.optimizer,
            "start": list(self.start),
            "end": list(self.end),
            "fval": self.fval,
            "n_evals": self.n_evals,
            "seconds": self.seconds,
            "return_code": self.return_code,
            "converged": self.converged,
            "singular": self.singular,
            "messages": list(self.messages),
        }


#: the return code of an optimizer stopped by :func:`time_limit`
MAXTIME = "NLOPT_MAXTIME_REACHED"
_DEADLINE: ContextVar[float | None] = ContextVar("multilevel_deadline", default=None)


@contextmanager
def time_limit(seconds: float | None) -> Iterator[None]:
    """Every optimizer run inside stops (with :data:`MAXTIME`) ``seconds`` from now.

    A limit already in force and closer is kept; ``None`` adds none.
    """
    if seconds is None:
        yield
        return
    end = time.perf_counter() + seconds
    outer = _DEADLINE.get()
    token = _DEADLINE.set(end if outer is None else min(outer, end))
    try:
        yield
    finally:
        _DEADLINE.reset(token)


def seconds_left() -> float | None:
    """Seconds to the deadline of the :func:`time_limit` in force (None: no limit)."""
    end = _DEADLINE.get()
    return None if end is None else end - time.perf_counter()


class _OutOfTime(Exception):
    pass


def bobyqa(
    f: Callable[[np.ndarray], float],
    x0: np.ndarray,
    lower: np.ndarray,
    *,
    ftol_abs: float = 0.0,
    xtol_abs: float = 1e-9,
    ftol_rel: float = 1e-12,
    maxeval: int = 100_000,
    initial_step: float | np.ndarray | None = None,
    history: list[tuple[np.ndarray, float]] | None = None,
) -> tuple[np.ndarray, float, int, str, float]:
    """Minimize ``f`` subject to ``x >= lower`` with NLopt's BOBYQA.

    Returns (x, f(x), evaluations, NLopt return code name, seconds). Every
    evaluation is appended to ``history`` when a list is given.
    """
    import nlopt

    x0 = np.asarray(x0, dtype=float)
    n = x0.size
    best = {"x": x0.copy(), "f": math.inf, "n": 0}

    def wrapped(x: np.ndarray, grad: np.ndarray) -> float:
        best["n"] += 1
        val = float(f(x))
        if not math.isfinite(val):
            val = 1e300
        if val < best["f"]:
            best["f"] = val
            best["x"] = x.copy()
        if history is not None:
            history.append((x.copy(), val))
        return val

    t0 = time.perf_counter()
    opt = nlopt.opt(nlopt.LN_BOBYQA, n)
    opt.set_min_objective(wrapped)
    lb = np.where(np.isfinite(lower), lower, -np.inf)
    opt.set_lower_bounds(lb)
    opt.set_ftol_abs(ftol_abs)
    opt.set_ftol_rel(ftol_rel)
    opt.set_xtol_abs(xtol_abs)
    opt.set_maxeval(maxeval)
    if initial_step is not None:
        opt.set_initial_step(initial_step)
    left = seconds_left()
    if left is not None:
        opt.set_maxtime(max(left, 1e-3))
    code_names = {
        1: "NLOPT_SUCCESS",
        2: "NLOPT_STOPVAL_REACHED",
        3: "NLOPT_FTOL_REACHED",
        4: "NLOPT_XTOL_REACHED",
        5: "NLOPT_MAXEVAL_REACHED",
        6: "NLOPT_MAXTIME_REACHED",
    }
    start = np.clip(x0, lb, None)
    if not np.all(np.isfinite(start)) or (initial_step is not None and not np.all(np.isfinite(initial_step))):
        # NLopt refuses these with invalid_argument; a fit reports it as a numerical failure
        raise FloatingPointError(f"BOBYQA was given a non-finite start {start} or step {initial_step}")
    try:
        opt.optimize(start)
        code = code_names.get(opt.last_optimize_result(), str(opt.last_optimize_result()))
    except nlopt.RoundoffLimited:
        code = "NLOPT_ROUNDOFF_LIMITED"
    seconds = time.perf_counter() - t0
    return best["x"], best["f"], best["n"], code, seconds


def lbfgsb(
    fg: Callable[[np.ndarray], tuple[float, np.ndarray]],
    x0: np.ndarray,
    lower: np.ndarray,
    *,
    gtol: float = 1e-7,
    maxiter: int = 10_000,
) -> tuple[np.ndarray, float, int, str, float]:
    """Minimize with SciPy's L-BFGS-B using an analytic gradient ``fg(x) -> (f, g)``.

    Returns (x, f(x), evaluations, status message, seconds) like :func:`bobyqa`.
    """
    from scipy.optimize import minimize

    count = {"n": 0}
    best: dict[str, Any] = {"x": np.asarray(x0, dtype=float), "f": math.inf}

    def wrapped(x: np.ndarray) -> tuple[float, np.ndarray]:
        left = seconds_left()
        if left is not None and left <= 0 and count["n"] > 0:
            raise _OutOfTime
        count["n"] += 1
        f, g = fg(x)
        if not math.isfinite(f):
            return 1e300, np.zeros_like(x)
        if f < best["f"]:
            best["x"], best["f"] = np.array(x, copy=True), f
        return f, g

    bounds = [(lo, None) if np.isfinite(lo) else (None, None) for lo in lower]
    t0 = time.perf_counter()
    try:
        res = minimize(
            wrapped,
            np.asarray(x0, dtype=float),
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"ftol": 1e-15, "gtol": gtol, "maxiter": maxiter, "maxcor": 20},
        )
    except _OutOfTime:
        return best["x"], float(best["f"]), count["n"], MAXTIME, time.perf_counter() - t0
    seconds = time.perf_counter() - t0
    code = "LBFGSB_CONVERGED" if res.success else f"LBFGSB_{res.message}"
    return np.asarray(res.x), float(res.fun), count["n"], code, seconds
