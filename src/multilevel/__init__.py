"""multilevel: hierarchical (mixed-effects) models from lme4-style formulas.

>>> import multilevel
>>> m = multilevel.fit("Reaction ~ Days + (Days | Subject)", multilevel.load_dataset("sleepstudy"))
>>> round(m.sigma, 3)
25.592
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = [
    "FitControl",
    "Model",
    "SampleControl",
    "anova",
    "aov",
    "bootstrap",
    "crt",
    "deconvolve",
    "fit",
    "fit_many",
    "gee",
    "indirect",
    "list_datasets",
    "load_dataset",
    "nlfit",
    "parse_formula",
    "sample",
]


def __dir__() -> list[str]:
    # the lazy names too, so that tab completion offers fit, sample, load_dataset, ...
    return sorted({*globals(), *__all__})


_API = (
    "fit",
    "gee",
    "Model",
    "sample",
    "anova",
    "bootstrap",
    "fit_many",
    "deconvolve",
    "aov",
    "indirect",
    "nlfit",
)


def __getattr__(name: str) -> Any:
    # Lazy imports keep ``import multilevel`` light (no SciPy/formulaic until used).
    if name in _API:
        from . import api

        return getattr(api, name)
    if name in ("FitControl", "SampleControl"):
        from . import control

        return getattr(control, name)
    if name in ("load_dataset", "list_datasets"):
        from . import datasets

        return getattr(datasets, name)
    if name == "crt":
        import importlib

        return importlib.import_module(".crt", __name__)
    if name == "parse_formula":
        from .formula import parse_formula

        return parse_formula
    raise AttributeError(f"module 'multilevel' has no attribute {name!r}")
