"""Adaptive Gauss-Hermite quadrature for GLMMs with one grouping factor.

Groups are independent given beta, so the marginal likelihood is a product of
q-dimensional integrals, one per level. Each is taken on a product grid of
``nagq`` Gauss-Hermite nodes per dimension, centred at the conditional mode and
scaled by the Cholesky factor of the curvature there (both from PIRLS): the
observed information (minus the Hessian of the log density in u; the default) or
the expected one (``laplace="expected"``, lme4's scaling). With one node this is
the Laplace approximation of the same kind. lme4 allows scalar random
effects only; vector random effects up to q = 3 are handled here.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from scipy.special import logsumexp

from ..errors import ModelError
from ..linalg.quadrature import hermite_grid
from ..model.spec import ModelSpec

if TYPE_CHECKING:
    from .pirls import GlmmProblem, PirlsResult

MAX_NODES = 25
MAX_Q = 3


#: the most quadrature nodes per group (nagq ** q): 25 for a scalar term or a pair
MAX_GRID = 625


def check_agq(spec: ModelSpec, nagq: int) -> None:
    if len(spec.groupings) != 1:
        raise ModelError(
            f"adaptive quadrature (nagq={nagq}) needs a single grouping factor; this model has "
            f"{len(spec.groupings)} ({', '.join(g.name for g in spec.groupings)}). Use nagq=1 (Laplace)"
        )
    q = spec.groupings[0].q
    if q > MAX_Q:
        raise ModelError(
            f"adaptive quadrature supports up to {MAX_Q} random effects per group; this model has {q}"
        )
    if nagq > MAX_NODES:
        raise ModelError(
            f"nagq={nagq} is more quadrature nodes than the {MAX_NODES} supported: use nagq= of at "
            f"most {MAX_NODES}"
        )
    if nagq**q > MAX_GRID:
        most = math.floor(MAX_GRID ** (1.0 / q) + 1e-9)
        raise ModelError(
            f"nagq={nagq} with {q} random effects per group is a grid of {nagq**q} nodes per group "
            f"(at most {MAX_GRID}); use nagq <= {most} or nagq=1 (Laplace)"
        )


def agq_deviance(
    prob: GlmmProblem, r: PirlsResult, theta: np.ndarray, beta: np.ndarray, disp: float, nagq: int
) -> float:
    """-2 x marginal log-likelihood by adaptive Gauss-Hermite quadrature."""
    q = prob.spec.groupings[0].q
    T = prob.spec.templates(theta)[0]
    curvature = r.curvature
    if curvature is None:
        return math.inf  # the observed information is not positive definite: no Laplace scale
    L = curvature[1].L1  # (n_levels, q, q): the curvature of the log density in u = L L'
    uhat = r.u[0]  # (n_levels, q)
    LinvT = np.linalg.inv(np.swapaxes(L, 1, 2))  # L^{-T}
    nodes, logw = hermite_grid(nagq, q)
    logdetL = np.sum(np.log(np.diagonal(L, axis1=1, axis2=2)), axis=1)
    # every node at once: u (K, n_levels, q); the rows' log densities summed per node and level
    u = uhat[None] + np.einsum("lab,kb->kla", LinvT, nodes)
    _, ll = prob.rows.run("quadrature", None, beta, T, u, disp)
    # log g(u) - log phi(z): the normal kernels of u and z
    terms = ll - 0.5 * np.sum(u * u, axis=2) + (0.5 * np.sum(nodes * nodes, axis=1) + logw)[:, None]
    per_level = logsumexp(terms, axis=0) - logdetL
    return float(-2.0 * np.sum(per_level))
