"""Data in: pandas, polars, pyarrow tables and dicts of arrays, with missing-value policy."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, MissingDataWarning, warn

NA_ACTIONS = ("omit", "raise")


class ArrayColumn:
    """A frame's NumPy-typed column (integers, floats, booleans) as its read-only
    values, with the part of the Series interface the materializer reads (``dtype``,
    ``to_numpy``, ``isna``): building the Series costs more than a small fit's design."""

    __slots__ = ("values",)

    def __init__(self, values: np.ndarray) -> None:
        values = values.view()
        values.flags.writeable = False
        self.values = values

    @property
    def dtype(self) -> np.dtype:
        return self.values.dtype

    def __len__(self) -> int:
        return len(self.values)

    def to_numpy(self, dtype: Any = None) -> np.ndarray:
        return self.values if dtype is None else self.values.astype(dtype, copy=False)

    def isna(self) -> pd.Series:
        return pd.Series(
            np.isnan(self.values) if self.values.dtype.kind == "f" else np.zeros(len(self), bool)
        )


class _Codes:
    """A categorical's codes as the Series of ``.cat.codes`` is read (``to_numpy``)."""

    __slots__ = ("codes",)

    def __init__(self, codes: np.ndarray) -> None:
        self.codes = codes

    def to_numpy(self) -> np.ndarray:
        return self.codes


class CategoricalColumn:
    """A frame's categorical column as its ``Categorical``, with what the materializer
    reads of the Series (``dtype``, ``array``, ``cat.categories``, ``cat.codes``)."""

    __slots__ = ("array",)

    def __init__(self, values: pd.Categorical) -> None:
        self.array = values

    @property
    def dtype(self) -> Any:
        return self.array.dtype

    def __len__(self) -> int:
        return len(self.array)

    @property
    def cat(self) -> CategoricalColumn:
        return self

    @property
    def categories(self) -> pd.Index:
        return self.array.categories

    @property
    def codes(self) -> _Codes:
        return _Codes(np.asarray(self.array.codes))

    def isna(self) -> pd.Series:
        return pd.Series(np.asarray(self.array.codes) < 0)


def _column(df: pd.DataFrame, name: str) -> Any:
    """``df[name]``, or its values as an :class:`ArrayColumn` (a NumPy dtype) or a
    :class:`CategoricalColumn` where pandas gives them directly (a unique name)."""
    get = getattr(df, "_get_column_array", None)  # pandas' own accessor of a column's values
    if get is not None:
        i = df.columns.get_loc(name)
        if isinstance(i, int):
            values = get(i)
            if isinstance(values, np.ndarray) and values.ndim == 1 and values.dtype.kind in "iufb":
                return ArrayColumn(values)
            if isinstance(values, pd.Categorical):
                return CategoricalColumn(values)
    return df[name]


class Columns(dict):
    """The columns of one frame by name, each read once: pandas builds a new Series
    on every ``df[name]`` (microseconds each, which a small model's materializer
    would otherwise pay a dozen times). NumPy-typed columns come as
    :class:`ArrayColumn`; the rest as Series."""

    def __init__(self, df: pd.DataFrame) -> None:
        super().__init__()
        self.df = df

    def __missing__(self, name: str) -> Any:
        col = self[name] = _column(self.df, name)
        return col


def columns_of(df: pd.DataFrame, cols: Columns | None) -> Columns:
    """``cols`` when it reads ``df``, else a new :class:`Columns` of ``df``."""
    return cols if cols is not None and cols.df is df else Columns(df)


def to_pandas(data: Any) -> pd.DataFrame:
    """Convert a supported table to a pandas DataFrame without copying where possible.

    Accepts pandas DataFrames, polars DataFrames, pyarrow Tables and mappings of
    column name to array.
    """
    if isinstance(data, pd.DataFrame):
        return data
    mod = type(data).__module__
    if mod.startswith("polars"):
        return data.to_pandas()
    if mod.startswith("pyarrow"):
        return data.to_pandas()
    if isinstance(data, Mapping):
        try:
            return pd.DataFrame(
                {k: np.asarray(v) if not isinstance(v, pd.Series) else v for k, v in data.items()}
            )
        except ValueError as exc:
            raise DataError(f"cannot build a table from the dict of arrays: {exc}") from exc
    raise DataError(
        f"data of type {type(data).__name__} is not supported: pass a pandas or polars "
        "DataFrame, a pyarrow Table, or a dict of equal-length arrays"
    )


def check_columns(df: pd.DataFrame, names: Iterable[str], what: str = "the formula") -> None:
    """Raise a DataError naming every missing column and the closest existing ones, or a
    column whose name the table holds twice (which of the two would be read is arbitrary)."""
    names = list(names)
    missing = [n for n in names if n not in df.columns]
    if not missing:
        if df.columns.has_duplicates:
            twice = sorted({str(n) for n in names if n in set(df.columns[df.columns.duplicated()])})
            if twice:
                raise DataError(
                    f"the data have more than one column named {', '.join(map(repr, twice))} (used in "
                    f"{what}); rename or drop the duplicates so that each name is one column"
                )
        return
    parts = []
    cols = [str(c) for c in df.columns]
    for n in missing:
        close = difflib.get_close_matches(n, cols, n=2)
        hint = f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""
        parts.append(f"{n!r}{hint}")
    raise DataError(
        f"column{'s' if len(missing) > 1 else ''} {', '.join(parts)} used in {what} "
        f"not found in the data; available columns: {', '.join(cols)}"
    )


def missing_rows(
    df: pd.DataFrame, columns: Iterable[str], cols: Columns | None = None
) -> tuple[np.ndarray, dict[str, int]]:
    """Boolean mask of the rows with no missing value in ``columns``, and the count per column."""
    cols = columns_of(df, cols)
    # column by column: a DataFrame of the used columns costs more than the test
    mask = np.ones(len(df), dtype=bool)
    per_col: dict[str, int] = {}
    for c in dict.fromkeys(columns):
        col = cols[c]
        kind = col.dtype.kind if isinstance(col.dtype, np.dtype) else "O"
        if kind in "iub":  # NumPy integers and booleans hold no missing values
            continue
        if kind == "f":
            na = np.isnan(col.to_numpy())
        elif isinstance(col.dtype, pd.CategoricalDtype):
            na = np.asarray(col.array.codes) < 0  # a categorical's missing values are code -1
        else:
            na = col.isna().to_numpy()
        if na.any():
            per_col[c] = int(na.sum())
            mask &= ~na
    return mask, per_col


def complete_rows(
    df: pd.DataFrame, columns: Iterable[str], na_action: str, cols: Columns | None = None
) -> tuple[np.ndarray, dict[str, int]]:
    """Boolean mask of rows with no missing value in ``columns``.

    Warns (``na_action="omit"``) or raises (``"raise"``) when rows are incomplete;
    the message counts the rows and names the columns.
    """
    if na_action not in NA_ACTIONS:
        raise DataError(f"na_action must be one of {NA_ACTIONS}, got {na_action!r}")
    mask, per_col = missing_rows(df, columns, cols)
    n_drop = int((~mask).sum())
    if n_drop:
        detail = ", ".join(f"{c} ({k})" for c, k in per_col.items())
        if na_action == "raise":
            raise DataError(
                f"{n_drop} of {len(df)} rows have missing values in columns {detail}; "
                "remove or impute them, or pass na_action='omit' to drop them"
            )
        warn(
            f"dropped {n_drop} of {len(df)} rows with missing values in columns {detail}",
            MissingDataWarning,
        )
    return mask, per_col


def strings_as_objects(df: pd.DataFrame, columns: Iterable[str], cols: Columns | None = None) -> pd.DataFrame:
    """``df`` with the string columns among ``columns`` as object columns.

    formulaic treats object (and pandas' default ``str``) columns as categorical but
    nullable ``string`` and Arrow string columns as numbers; as objects every table
    type's strings are the same categorical variable.
    """
    cols = columns_of(df, cols)
    fix = {}
    for c in dict.fromkeys(columns):
        dtype = cols[c].dtype
        if isinstance(dtype, np.dtype) and dtype.kind in "iufb":
            continue
        if pd.api.types.is_object_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
            continue
        if pd.api.types.is_string_dtype(dtype) and dtype != "str":
            fix[c] = cols[c].astype(object)
    return df.assign(**fix) if fix else df


def check_finite(name: str, values: np.ndarray, rows: Any = None) -> None:
    """Raise a DataError when a numeric array holds inf or nan; ``rows`` (the input's row
    labels of ``values``) lets the message say where."""
    if values.dtype.kind in "fc" and not np.all(np.isfinite(values)):
        where = np.flatnonzero(~np.isfinite(values))
        bad = where.size
        at = ""
        if rows is not None:
            labels = [str(r) for r in np.asarray(rows)[where[:5]]]
            at = f" in row{'s' if bad > 1 else ''} {', '.join(labels)}{', ...' if bad > 5 else ''}"
        raise DataError(
            f"{name} has {bad} non-finite value{'s' if bad > 1 else ''} (inf or nan){at}; "
            "remove those rows or transform the variable"
        )


def row_vector(arg: Any, df: pd.DataFrame, mask: np.ndarray, what: str) -> np.ndarray | None:
    """A per-row argument (``weights=``, ``offset=``): a column of ``df`` or an array with
    one value per row of ``df``, as finite floats on the rows in ``mask``."""
    if arg is None:
        return None
    if isinstance(arg, str):
        check_columns(df, [arg], f"{what}=")
        values = df[arg].to_numpy()[mask]
    else:
        values = np.asarray(arg)
        if values.shape != (len(df),):
            raise DataError(f"{what} has shape {values.shape}; expected one value per row ({len(df)},)")
        values = values[mask]
    values = np.asarray(values, dtype=float)
    check_finite(what, values)
    return values


def complete_frame(
    df: pd.DataFrame, used: list[str], needed: list[str], na_action: str
) -> tuple[np.ndarray, dict[str, int], pd.DataFrame, Columns]:
    """The complete rows (mask and counts per column), renumbered, with strings as
    objects, and their columns (each read once)."""
    cols = Columns(df)
    mask, per_col = complete_rows(df, needed, na_action, cols)
    sub = strings_as_objects(_renumbered(df if mask.all() else df.loc[mask]), used, cols)
    return mask, per_col, sub, columns_of(sub, cols)


def _renumbered(df: pd.DataFrame) -> pd.DataFrame:
    """``df`` with rows numbered 0 to n - 1 (as is when they already are)."""
    idx = df.index
    if isinstance(idx, pd.RangeIndex) and idx.start == 0 and idx.step == 1:
        return df
    return df.reset_index(drop=True)


_NAMES: list[tuple[pd.Index, frozenset[str]]] = []  # the last table's column names


def column_names(df: pd.DataFrame) -> frozenset[str]:
    """The table's column names as strings (the last table's remembered: an Index is
    immutable, and listing an Arrow-backed one costs more than a small fit's design)."""
    index = df.columns
    if _NAMES and _NAMES[0][0] is index:
        return _NAMES[0][1]
    names = frozenset(map(str, index.tolist()))
    _NAMES[:] = [(index, names)]
    return names
