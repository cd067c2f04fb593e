"""Modules loaded on the first use of one of their attributes.

``special = lazy_module("scipy.special")`` at the top of a module reads as the
import it stands for, but SciPy (about 0.15 s the first time, its base package
alone 0.06 s) loads only when a function first calls ``special.expit``: a
nonlinear Gaussian fit, which needs no SciPy, does not pay for it.
(``importlib.util.LazyLoader`` would still import the parent package to find the
submodule.)

>>> m = lazy_module("math")
>>> m.sqrt(4.0)
2.0
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule:
    """Stands for the module ``name`` and imports it on first attribute access."""

    __slots__ = ("_module", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._module: ModuleType | None = None

    def __getattr__(self, attr: str) -> Any:
        if self._module is None:
            self._module = importlib.import_module(self._name)
        return getattr(self._module, attr)

    def __repr__(self) -> str:
        state = "loaded" if self._module is not None else "not loaded yet"
        return f"<lazy module {self._name!r}, {state}>"


def lazy_module(name: str) -> Any:
    """A :class:`LazyModule` for ``name`` (typed ``Any``: it answers as the module does)."""
    return LazyModule(name)
