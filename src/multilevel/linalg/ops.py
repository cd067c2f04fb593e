"""The array functions a formula needs, for NumPy or JAX from one source.

Densities (:meth:`multilevel.family.Family.logpdf`) and inverse links
are written once against an :class:`ArrayOps`: the likelihood fits call them
with :data:`NUMPY`, the Bayesian sampler with :func:`jax_ops`, so the two
paths cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..lazy import lazy_module

special = lazy_module("scipy.special")


@dataclass(frozen=True)
class ArrayOps:
    xp: Any  # numpy or jax.numpy
    special: Any  # scipy.special or jax.scipy.special


NUMPY = ArrayOps(np, special)


def jax_ops() -> ArrayOps:
    """The JAX namespace (imported on first use: JAX is optional at import time)."""
    import jax.numpy as jnp
    import jax.scipy.special as jss

    return ArrayOps(jnp, jss)
