"""The blocked Cholesky factor of a mixed model, one record for both array backends.

For templates ``T_1 ... T_K`` (``Lambda = blockdiag(I_{n_k} (x) T_k)``) the
symmetric system

    [[Lambda'Z'Z Lambda + I, Lambda'Z'X, Lambda'Z'y],
     [X'Z Lambda,            X'X,        X'y      ],
     [y'Z Lambda,            y'X,        y'y      ]]   (weighted)

is factored as ``L L'`` in two parts: the first grouping block as a batch of
``q1 x q1`` factors ``L1`` (one per level), and the Schur complement of the rest
``[Z_2 ... Z_K, X, y]`` as one dense lower factor ``LS``:

    LS = [[L_Z,  0,    0     ],
          [L_XZ, L_XX, 0     ],
          [c_Z', c_X', sqrt(r2)]]

so that ``r2`` is the penalized residual sum of squares at the optimal
``(beta, u)``, ``L_XX' beta_hat = c_X``, and at any other ``beta``

    r2(beta) = r2 + |c_X - L_XX' beta|^2,   L_Z' u_R(beta) = c_Z - L_XZ' beta.

Two backends compute it behind the same functions (:func:`backend`):

* :mod:`multilevel.linalg.numpy_backend`: sparse Schur patterns, LAPACK, closed
  forms for small templates; what the likelihood fits run.
* :mod:`multilevel.linalg.jax_backend`: dense, jit-able and differentiable; what
  the Bayesian sampler runs, and any accelerator.

Each provides ``system(cp)`` (the cross-products prepared for it),
``factor(system, templates) -> Factor``, ``solve(system, f, beta=None,
noise=None) -> Solution``, ``vcov_beta(system, f, sigma)`` and
``conditional_variances(system, f, sigma)``, plus ``SCALARS``, the namespace of
the factor's scalars for the criteria of :mod:`multilevel.linalg.criteria`
(written once for both). Products with ``Lambda`` of the rest are
:func:`multilevel.linalg.lambdas.times_lambda`, for either array namespace.

Examples
--------
>>> import numpy as np
>>> from multilevel.datasets import load_dataset
>>> from multilevel.model.design import build_model
>>> from multilevel.linalg.crossprod import compute_crossprods
>>> from multilevel.linalg.backends import backend
>>> spec, d = build_model("Yield ~ 1 + (1 | Batch)", load_dataset("Dyestuff"))
>>> be = backend("numpy")
>>> system = be.system(compute_crossprods(d, [6]))
>>> f = be.factor(system, spec.templates(np.array([0.8])))
>>> round(float(be.solve(system, f).beta[0]), 2)
1527.5
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np


class Factor(NamedTuple):
    """The blocked factor at one set of templates (arrays of either backend)."""

    templates: tuple[Any, ...]  # T_1 ... T_K, lower triangular (q_k, q_k)
    L1: Any  # (n1, q1, q1) factors of the first block
    LS: Any  # (m, m) lower factor of the bordered dense rest
    logdet_z: Any  # log det(Lambda'Z'Z Lambda + I)
    logdet_x: Any  # log det(L_XX L_XX')
    r2: Any  # penalized (weighted) residual sum of squares


class Solution(NamedTuple):
    """Fixed effects and the random effects, spherical (``u``) and on their scale (``b``)."""

    beta: Any  # (p,)
    u: tuple[Any, ...]  # per grouping block, (levels, q)
    b: tuple[Any, ...]  # per grouping block, b_l = T u_l


def rest_blocks(
    inv: Any, templates: Sequence[Any], rest: tuple[tuple[int, int], ...], sigma: Any
) -> list[Any]:
    """``sigma^2 T inv_ll T'`` for every level's diagonal block of ``inv`` (the inverse of
    the dense Z part), one ``(levels, q, q)`` array per rest grouping block; either backend."""
    out = []
    start = 0
    for (nl, q), T in zip(rest, templates):
        idx = start + np.arange(nl * q).reshape(nl, q)
        blk = inv[idx[:, :, None], idx[:, None, :]]
        out.append(sigma**2 * (T[None] @ blk @ T.T[None]))
        start += nl * q
    return out
