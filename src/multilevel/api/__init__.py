"""The public calls: build a model from a formula and data, fit, sample, compare, refit.

:mod:`~multilevel.api.core` chains the stages of one fit (``fit``, ``Model``,
``sample``, ``gee``); :mod:`~multilevel.api.compare` compares fits (``anova``);
:mod:`~multilevel.api.refits` runs many fits (``bootstrap``, ``fit_many``);
:mod:`~multilevel.api.deconv` estimates distributions of effects (``deconvolve``);
:mod:`~multilevel.api.indirect` fits simulators by indirect inference (``indirect``); ``aov``
is :func:`multilevel.classical.fit.aov` (classical ANOVA with ``Error()`` strata);
:mod:`~multilevel.api.nonlinear` fits nonlinear mixed models (``nlfit``).
"""

from typing import Any

from .compare import anova
from .core import Model, fit, gee, is_linear_model
from .deconv import deconvolve
from .indirect import indirect
from .nonlinear import nlfit
from .refits import bootstrap, fit_many
from .sampling import sample

__all__ = [
    "Model",
    "anova",
    "aov",
    "bootstrap",
    "deconvolve",
    "fit",
    "fit_many",
    "gee",
    "indirect",
    "is_linear_model",
    "nlfit",
    "sample",
]


def __getattr__(name: str) -> Any:
    # aov on first use: the classical package's imports (SciPy's distributions for its
    # F tests) stay off every other fit's path
    if name == "aov":
        from ..classical.fit import aov

        return aov
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
