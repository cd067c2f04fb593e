"""Gauss-Hermite product grids for integrals against the standard normal density
(the adaptive quadrature of GLMMs and nonlinear mixed models)."""

from __future__ import annotations

import itertools
from functools import lru_cache

import numpy as np


@lru_cache(maxsize=32)
def hermite_grid(nagq: int, q: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes (K, q) and log weights (K,) for integrals against the standard normal density.

    Examples
    --------
    >>> nodes, logw = hermite_grid(3, 2)
    >>> nodes.shape, round(float(np.exp(logw).sum()), 12)
    ((9, 2), 1.0)
    """
    x, w = np.polynomial.hermite_e.hermegauss(nagq)
    logw = np.log(w / np.sqrt(2 * np.pi))
    nodes = np.array(list(itertools.product(x, repeat=q)))
    logws = np.array([sum(c) for c in itertools.product(logw, repeat=q)])
    return nodes, logws
