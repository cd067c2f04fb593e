"""The data columns a formula's predictors evaluate: recorded at the fit, imposed on new data.

formulaic decides from a column's dtype whether it is categorical, and keeps the
fitted categories in its encoder state only for what it then finds categorical:
new data whose ``period`` column holds the integers 1-4 would be multiplied into
the coefficients of a fitted factor ``period``. :func:`record_columns` keeps each
predictor column's kind and levels in the spec; :func:`conform_columns` gives new
data the fitted kinds (an integer 1 becomes the level ``"1"``) and refuses levels
the fit never saw, naming the column, the values and the known levels.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError
from ..formula import ParsedFormula
from .spec import ColumnSpec

_IDENT = re.compile(r"`([^`]+)`|([A-Za-z_.][A-Za-z0-9_.]*)")
_SHOWN = 10  # levels listed in an error message


def names_in(expr: str, columns: AbstractSet[str]) -> list[str]:
    """The column names that appear in a formula expression, in order (repeats kept)."""
    if isinstance(columns, frozenset):
        return list(_names_in_table(expr, columns))
    return _scan(expr, columns)


@lru_cache(maxsize=1024)
def _names_in_table(expr: str, columns: frozenset[str]) -> tuple[str, ...]:
    """:func:`names_in` remembered for a table's (frozen) column names."""
    return tuple(_scan(expr, columns))


def _scan(expr: str, columns: AbstractSet[str]) -> list[str]:
    out = []
    for m in _IDENT.finditer(expr):
        name = m.group(1) or m.group(2)
        if name in columns:
            out.append(name)
    return out


def level_name(v: Any) -> str:
    """A level's name as the model reports it: floats that are integers lose ``.0``."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def predictor_names(parsed: ParsedFormula, columns: AbstractSet[str]) -> list[str]:
    """Columns evaluated by the fixed part, the random-term expressions and ``offset()`` terms."""
    exprs = [parsed.fixed, *(t.expr for t in parsed.random), *parsed.offsets]
    return list(dict.fromkeys(n for e in exprs for n in names_in(e, columns)))


def is_categorical(col: pd.Series) -> bool:
    """formulaic's test for pandas columns (after :func:`~.data.strings_as_objects`)."""
    dtype = col.dtype
    if isinstance(dtype, np.dtype) and dtype.kind in "iufcbmM":
        return False
    return isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_object_dtype(dtype) or dtype == "str"


def _contrasts(name: str, mm_specs: Iterable[Any]) -> str | None:
    for mm in mm_specs:
        if isinstance(mm, dict):  # the fast design's record: {column: contrasts}
            if name in mm:
                return str(mm[name])
            continue
        state = getattr(mm, "encoder_state", {}).get(name)
        if state is not None and "contrasts" in state[1]:
            cls = type(state[1]["contrasts"].contrasts).__name__
            return cls.removesuffix("Contrasts").lower() or cls
    return None


def record_columns(
    df: pd.DataFrame,
    names: Iterable[str],
    mm_specs: Iterable[Any],
    cols: Mapping[str, pd.Series] | None = None,
) -> tuple[ColumnSpec, ...]:
    """The kind and levels of each predictor column in the rows used for the fit.

    ``mm_specs`` are formulaic's specs of the fixed and random-term designs; they
    name the contrasts of the columns they encode directly (the fast design gives
    one dict of them instead).
    """
    specs = list(mm_specs)
    out = []
    for name in names:
        col = cols[name] if cols is not None else df[name]
        if not is_categorical(col):
            out.append(ColumnSpec(name=name, categorical=False, dtype=_dtype_name(col.dtype)))
            continue
        cat = col if isinstance(col.dtype, pd.CategoricalDtype) else col.astype("category")
        levels = tuple(cat.cat.categories.tolist())  # formulaic's categories, in its order
        used = np.bincount(cat.cat.codes.to_numpy()[cat.cat.codes.to_numpy() >= 0], minlength=len(levels))
        out.append(
            ColumnSpec(
                name=name,
                categorical=True,
                dtype=str(col.dtype),
                levels=levels,
                observed=tuple(level_name(v) for v, k in zip(levels, used) if k > 0),
                contrasts=_contrasts(name, specs),
            )
        )
    return tuple(out)


_DTYPE_NAMES: dict[Any, str] = {}


def _dtype_name(dtype: Any) -> str:
    """``str(dtype)``, remembered (NumPy builds the name in Python on every call)."""
    try:
        return _DTYPE_NAMES[dtype]
    except (KeyError, TypeError):
        name = str(dtype)
    try:
        _DTYPE_NAMES[dtype] = name
    except TypeError:
        pass
    return name


def _shown(values: list[str]) -> str:
    more = f", ... ({len(values)} in all)" if len(values) > _SHOWN else ""
    return ", ".join(repr(v) for v in values[:_SHOWN]) + more


def _as_fitted_levels(col: pd.Series, spec: ColumnSpec) -> pd.Series:
    codes, uniques = pd.factorize(col)  # complete rows: no code is -1
    names = [level_name(v) for v in uniques.tolist()]
    unseen = sorted(set(names) - set(spec.observed))
    if unseen:
        raise DataError(
            f"newdata column {spec.name!r} has level{'s' if len(unseen) > 1 else ''} {_shown(unseen)} "
            f"that the model was not fitted on; its levels are {_shown(list(spec.observed))}. "
            "A fixed effect has no estimate for an unseen level: drop those rows or recode them."
        )
    position = {level_name(v): i for i, v in enumerate(spec.levels)}
    fitted_codes = np.array([position[n] for n in names], dtype=np.int64)[codes]
    dtype = pd.CategoricalDtype(list(spec.levels))
    return pd.Series(pd.Categorical.from_codes(fitted_codes, dtype=dtype), index=col.index)


def _as_numbers(col: pd.Series, spec: ColumnSpec) -> pd.Series:
    if not is_categorical(col):
        return col
    values = col.astype(object)
    num = pd.to_numeric(values, errors="coerce")
    bad = sorted({level_name(v) for v in values[num.isna()].tolist()})
    if bad:
        raise DataError(
            f"newdata column {spec.name!r} holds {_shown(bad)}, but it was numeric ({spec.dtype}) in the "
            "fitted data; pass numbers"
        )
    return num


def conform_columns(df: pd.DataFrame, columns: Iterable[ColumnSpec]) -> pd.DataFrame:
    """``df`` with every recorded predictor column in the kind it had at the fit.

    ``df`` holds complete rows only. Categorical columns become categoricals with
    the fitted categories (matched by level name); numeric columns stay numbers.
    """
    fix = {c.name: (_as_fitted_levels if c.categorical else _as_numbers)(df[c.name], c) for c in columns}
    return df.assign(**fix) if fix else df
