"""Choosing the array backend of the blocked factor by name.

Both backends implement the same functions over the same
:class:`~multilevel.linalg.factor.Factor` record: ``system``, ``factor``,
``solve``, ``vcov_beta``, ``conditional_variances``. Kept apart from
:mod:`multilevel.linalg.factor`, which the backends import.
"""

from __future__ import annotations

from types import ModuleType

from ..errors import ModelError

BACKENDS = ("numpy", "jax")


def backend(name: str) -> ModuleType:
    """The backend module by name: ``"numpy"`` or ``"jax"`` (JAX imported only here).

    Examples
    --------
    >>> backend("numpy").__name__
    'multilevel.linalg.numpy_backend'
    """
    if name == "numpy":
        from . import numpy_backend

        return numpy_backend
    if name == "jax":
        from . import jax_backend

        return jax_backend
    raise ModelError(f"unknown linear-algebra backend {name!r}; use one of {BACKENDS}")
