"""formulaic behind two calls: a model matrix, and the values of one expression.

Both turn formulaic's many exception types into a :class:`~multilevel.errors.FormulaError`
and its warning about data outside the fitted categories (which it would code as
the reference level) into a :class:`~multilevel.errors.DataError`.
"""

from __future__ import annotations

import warnings
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
        raise FormulaError(f"cannot build the design for {spec_or_formula!s}: {exc}", formula) from exc


def expression(expr: str, df: pd.DataFrame, formula: str) -> np.ndarray:
    """The values of one formula expression (``size - incidence``, ``log(n)``) as floats."""
    return np.asarray(model_matrix(f"I({expr}) ~ 1", df, formula).lhs.to_numpy(dtype=float)).ravel()
