"""The public calls: build a model from a formula and data, fit, sample, compare, refit.

:mod:`~multilevel.api.core` chains the stages of one fit (``fit``, ``Model``,
``sample``, ``gee``); :mod:`~multilevel.api.compare` compares fits (``anova``);
:mod:`~multilevel.api.refits` runs many fits (``bootstrap``, ``fit_many``);
:mod:`~multilevel.api.deconv` estimates distributions of effects (``deconvolve``);
:mod:`~multilevel.api.simulators` fits simulators by indirect inference (``indirect``); ``aov``
is :func:`multilevel.classical.fit.aov` (classical ANOVA with ``Error()`` strata);
:mod:`~multilevel.api.nonlinear` fits nonlinear mixed models (``nlfit``).
"""

from importlib import import_module
from typing import Any

# each name from its own module on first use: a nonlinear fit does not load the linear
# core's imports (SciPy's sparse matrices), nor ANOVA SciPy's distributions. No module
# is named as a function it holds: importing it would bind the module to that name.
_HOME = {
    "Model": "core",
    "fit": "core",
    "gee": "core",
    "is_linear_model": "core",
    "anova": "compare",
    "deconvolve": "deconv",
    "indirect": "simulators",
    "nlfit": "nonlinear",
    "bootstrap": "refits",
    "fit_many": "refits",
    "sample": "sampling",
}

__all__ = sorted([*_HOME, "aov"])


def __getattr__(name: str) -> Any:
    if name == "aov":
        from ..classical.fit import aov

        return aov
    if name in _HOME:
        return getattr(import_module(f".{_HOME[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
