"""The rows an ``aov`` uses: complete cases, factors coded, the treatment matrix and the
error cells; and the balance check (equal replication)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError, MissingDataWarning, warn
from ..model.data import check_columns, to_pandas
from .parse import AovFormula


@dataclass(frozen=True)
class AovData:
    """The rows used: response, treatment matrix with each column's term, error cells."""

    y: np.ndarray
    X: np.ndarray
    assign: tuple[str, ...]
    error_names: tuple[str, ...]
    error_cells: tuple[np.ndarray, ...]
    frame: pd.DataFrame


def aov_data(spec: AovFormula, data: object) -> AovData:
    """The complete rows of the variables of ``spec``, factors coded, and the treatment matrix."""
    from formulaic import Formula, model_matrix

    df = to_pandas(data)
    if len(df) == 0 or df.shape[1] == 0:
        raise DataError("the data have no rows; aov needs observations of the response and the factors")
    try:
        needed = sorted(Formula(spec.treatment).required_variables)
    except Exception as exc:  # formulaic raises many exception types
        raise FormulaError(
            f"cannot parse the treatment part {spec.treatment!r}: {exc}", spec.formula
        ) from exc
    check_columns(df, [*needed, *(v for v in spec.error_factors if v not in needed)], "the aov formula")
    used = list(dict.fromkeys([*needed, *spec.error_factors]))
    frame = _complete(df[used].copy(), used)
    for col in spec.error_factors:
        frame[col] = _as_factor(frame[col], col, error=True)
    for col in needed:
        if col not in spec.error_factors and not pd.api.types.is_numeric_dtype(frame[col]):
            frame[col] = _as_factor(frame[col], col, error=False)
    column = frame[spec.response] if spec.response in frame.columns else None  # else an expression
    if column is not None and (
        pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column)
    ):
        raise DataError(f"the response {spec.response!r} must be numeric; got {column.dtype}")
    try:
        mm = model_matrix(spec.treatment, frame, na_action="raise")
    except Exception as exc:  # formulaic raises many exception types
        raise FormulaError(
            f"cannot build the treatment matrix of {spec.treatment!r}: {exc}", spec.formula
        ) from exc
    if mm.lhs.shape[1] != 1:
        raise DataError(
            f"the response {spec.response!r} must be one numeric column; it gives {mm.lhs.shape[1]}"
        )
    y = np.asarray(mm.lhs, dtype=float)[:, 0]
    X = np.asarray(mm.rhs, dtype=float)
    assign = [""] * X.shape[1]
    for term, sl in mm.rhs.model_spec.term_slices.items():
        for j in range(sl.start, sl.stop):
            assign[j] = str(term)
    if not np.all(np.isfinite(y)):
        raise DataError(f"the response {spec.response!r} holds inf or NaN; aov needs finite values")
    names = tuple(":".join(t) for t in spec.error_terms)
    cells = tuple(_cell_codes(frame, t) for t in spec.error_terms)
    return AovData(y, X, tuple(assign), names, cells, frame)


def _complete(frame: pd.DataFrame, used: list[str]) -> pd.DataFrame:
    keep = frame.notna().all(axis=1).to_numpy()
    if not keep.all():
        warn(
            f"{int((~keep).sum())} rows with missing values in {', '.join(used)} dropped", MissingDataWarning
        )
        frame = frame.loc[keep].reset_index(drop=True)
    if len(frame) == 0:
        raise DataError(
            f"no complete rows in {', '.join(used)}; aov needs observations without missing values"
        )
    return frame


def _as_factor(col: pd.Series, name: str, error: bool) -> pd.Series:
    """``col`` as a categorical: its own categories (unused dropped), else in order of appearance."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        return col.cat.remove_unused_categories()
    if error and pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        exc = DataError(
            f"Error() stratum column {name!r} is numeric ({col.dtype}); strata are factors. "
            f"Make it categorical first, e.g. data[{name!r}] = data[{name!r}].astype('category')"
        )
        exc.column = name  # type: ignore[attr-defined]  # for a caller that words it otherwise (the CLI)
        raise exc
    return pd.Series(pd.Categorical(col, categories=pd.unique(col)), index=col.index, name=name)


def _cell_codes(frame: pd.DataFrame, term: tuple[str, ...]) -> np.ndarray:
    """Each row's cell of the factors in ``term``, coded 0..L-1 (occurring cells only)."""
    codes = np.column_stack([frame[v].cat.codes.to_numpy() for v in term])
    _, inverse = np.unique(codes, axis=0, return_inverse=True)
    return np.asarray(inverse, dtype=np.int64).reshape(-1)


def is_balanced(d: AovData, spec: AovFormula) -> bool:
    """Equal replication: every occurring cell of every factor combination in the model
    (each error term, each treatment factor and all factors together) has as many rows."""
    factors = [c for c in d.frame.columns if isinstance(d.frame[c].dtype, pd.CategoricalDtype)]
    groups: list[tuple[str, ...]] = [*spec.error_terms, *((f,) for f in factors)]
    if factors:
        groups.append(tuple(factors))
    for g in groups:
        counts = np.bincount(_cell_codes(d.frame, g))
        if counts.min() != counts.max():
            return False
    return True
