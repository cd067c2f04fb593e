"""formulaic behind two calls: a model matrix, and the values of one expression.

:class:`DeferredSpec` stands for formulaic's spec of a design that was built
without formulaic (:mod:`~multilevel.model.fast_design`) until someone needs it.
Both calls turn formulaic's many exception types into a :class:`~multilevel.errors.FormulaError`
and its warning about data outside the fitted categories (which it would code as
the reference level) into a :class:`~multilevel.errors.DataError`.
"""

from __future__ import annotations

import re
import warnings
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError


def model_matrix(spec_or_formula: Any, df: pd.DataFrame, formula: str) -> Any:
    """formulaic's model matrix of a formula string, or of a fitted formulaic spec on new rows."""
    from formulaic import model_matrix as mm
    from formulaic.errors import DataMismatchWarning

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", DataMismatchWarning)
            if isinstance(spec_or_formula, str):
                return mm(spec_or_formula, df, na_action="ignore")
            return spec_or_formula.get_model_matrix(df, na_action="ignore")
    except FormulaError:
        raise
    except DataMismatchWarning as exc:
        raise DataError(f"the data hold values outside the categories of {spec_or_formula!s}: {exc}") from exc
    except Exception as exc:  # formulaic raises many exception types
        dates = [
            str(c)
            for c in df.columns
            if pd.api.types.is_datetime64_any_dtype(df[c]) and re.search(rf"\b{re.escape(str(c))}\b", formula)
        ]
        if dates:
            raise FormulaError(
                f"cannot build the design for {spec_or_formula!s}: {', '.join(map(repr, dates))} holds "
                "dates or times, which are not numbers; convert them (e.g. days since the first date) "
                "or declare them a factor with C(...)",
                formula,
            ) from exc
        raise FormulaError(f"cannot build the design for {spec_or_formula!s}: {exc}", formula) from exc


def expression(expr: str, df: pd.DataFrame, formula: str) -> np.ndarray:
    """The values of one formula expression (``size - incidence``, ``log(n)``) as floats."""
    lhs = model_matrix(f"I({expr}) ~ 1", df, formula).lhs
    if lhs.shape[1] != 1:
        # a non-numeric column (strings, booleans of object dtype) is encoded as dummies
        raise DataError(
            f"{expr!r} in {formula!r} must be one number per row, but it is encoded as "
            f"{lhs.shape[1]} columns ({', '.join(map(str, lhs.columns))}); convert the column to numbers"
        )
    return np.asarray(lhs.to_numpy(dtype=float)).ravel()


class FormulaicParts:
    """formulaic's specs of the parts of ``joined`` (``lhs ~ fixed | re1 | ...``) on the
    rows ``df``, built on first use: exactly what the formulaic path records."""

    def __init__(self, joined: str, df: pd.DataFrame, formula: str) -> None:
        self.joined, self.df, self.formula = joined, df, formula

    @cached_property
    def specs(self) -> tuple[Any, ...]:
        rhs = model_matrix(self.joined, self.df, self.formula).rhs
        return tuple(m.model_spec for m in (rhs if isinstance(rhs, tuple) else (rhs,)))


class DeferredSpec:
    """formulaic's ``ModelSpec`` of one part of a design, made when first used.

    Attribute access (``get_model_matrix``, ``encoder_state``, ``term_indices``, ...)
    and ``str()`` go to the real spec, built then from the fitted rows.
    """

    def __init__(self, parts: FormulaicParts, index: int) -> None:
        self._parts, self._index = parts, index

    @property
    def spec(self) -> Any:
        return self._parts.specs[self._index]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_parts", "_index"):  # pickling, copying
            raise AttributeError(name)
        return getattr(self.spec, name)

    def __str__(self) -> str:
        return str(self.spec)

    def __repr__(self) -> str:
        return f"DeferredSpec({self._parts.joined!r}, part {self._index})"
