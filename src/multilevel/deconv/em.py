"""Plain EM for the NPMLE (the fixed point f <- f * D(f)): the baseline, slow to converge."""

from __future__ import annotations

import numpy as np

from .problem import Problem


def em_iterations(problem: Problem, iterations: int, f: np.ndarray | None = None) -> np.ndarray:
    """``iterations`` EM steps from ``f`` (uniform weights 1/m by default)."""
    m = problem.At.shape[1]
    f = np.full(m, 1.0 / m) if f is None else np.array(f, float)
    At, v = problem.At, problem.v
    for _ in range(iterations):
        f = f * ((v / (At @ f)) @ At)
    return f
