"""New data through a fitted spec: the same columns, levels and offset as the fit.

:func:`design_for` rebuilds the fixed design, the grouping blocks and the offset
of new rows. Predictor columns take the kind and levels they had at the fit (an
integer 1 matches the fitted level ``"1"``; an unseen fixed-effect level is an
error), the offset comes from the fitted ``offset=`` column (or an ``offset=``
given here) plus the formula's ``offset()`` terms, and grouping levels the fit
never saw get negative codes (the caller's ``new_levels`` decides about them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from .columns import conform_columns
from .data import check_columns, missing_rows, row_vector, strings_as_objects, to_pandas
from .design import Design, GroupingData
from .groupings import codes_for_levels, term_values
from .matrices import expression, model_matrix
from .spec import ARRAY_ARG, ModelSpec

NEWDATA_NA = ("raise", "pass")


def _offset_arg(spec: ModelSpec, offset: Any) -> Any:
    """The source of the new rows' ``offset=`` part: a column name, an array or None."""
    if offset is not None:
        if spec.offset is None:
            raise DataError(
                "offset= was given for newdata, but the model was fitted without offset=; an offset "
                "in the formula (offset(x)) is read from newdata's columns"
            )
        return offset
    if spec.offset == ARRAY_ARG:
        raise DataError(
            "the model was fitted with offset= as an array, which new rows cannot supply: pass "
            "offset= (a column name or one value per row of newdata) to predict, or fit with "
            "offset='column'"
        )
    return spec.offset


def _fixed(spec: ModelSpec, df: pd.DataFrame) -> np.ndarray:
    m = model_matrix(spec.fixed_spec, df, spec.formula)
    names = list(m.columns)
    return np.asarray(m.to_numpy(dtype=float))[:, [names.index(c) for c in spec.fixed_names]]


def _empty(spec: ModelSpec, groups: bool, rows: np.ndarray, n_input: int) -> Design:
    """The design of no rows (every row of newdata incomplete)."""
    gd = tuple(
        GroupingData(codes=np.zeros(0, dtype=np.int64), values=np.zeros((0, g.q)))
        for g in (spec.groupings if groups else ())
    )
    off = np.zeros(0) if spec.has_offset else None
    return Design(y=np.zeros(0), X=np.zeros((0, spec.p)), groups=gd, offset=off, rows=rows, n_input=n_input)


def design_for(
    spec: ModelSpec, newdata: Any, *, offset: Any = None, groups: bool = True, na_action: str = "raise"
) -> Design:
    """Rebuild the fixed design, grouping blocks and offset of ``newdata`` with the fitted spec.

    Parameters
    ----------
    offset:
        The ``offset=`` part for these rows (a column name or one value per row),
        instead of the fitted ``offset=`` column; needed when the fit's ``offset=``
        was an array. ``offset()`` terms of the formula are always read from newdata.
    groups:
        Build the grouping blocks (False for population-level predictions, which
        then need no grouping columns).
    na_action:
        Rows with a missing value in a column the prediction reads: ``"raise"``
        refuses them; ``"pass"`` leaves them out of the design, whose ``rows`` and
        :meth:`~multilevel.model.design.Design.to_input_rows` put NaN in their place
        (lme4's ``na.action = na.pass``). Nothing is dropped silently.

    Level codes are negative (-1, -2, ..., one per distinct level) for grouping
    levels the model has not seen. The response is not read (``y`` is NaN).

    Examples
    --------
    >>> import pandas as pd
    >>> from multilevel.datasets import load_dataset
    >>> from multilevel.model.design import build_model
    >>> spec, _ = build_model("Reaction ~ Days + (1 | Subject)", load_dataset("sleepstudy"))
    >>> design_for(spec, pd.DataFrame({"Days": [0, 9], "Subject": ["308", "new"]})).groups[0].codes
    array([ 0, -1])
    """
    if na_action not in NEWDATA_NA:
        raise DataError(f"na_action for new data must be one of {NEWDATA_NA}, got {na_action!r}")
    df = to_pandas(newdata).reset_index(drop=True)
    off_arg = _offset_arg(spec, offset)
    factors = [f for g in spec.groupings for f in g.factors] if groups else []
    needed = list(dict.fromkeys([c.name for c in spec.columns] + factors))
    check_columns(df, needed + ([off_arg] if isinstance(off_arg, str) else []), "the fitted model")
    mask, per_col = missing_rows(df, needed)
    if per_col and na_action == "raise":
        detail = ", ".join(f"{c} ({k})" for c, k in per_col.items())
        raise DataError(
            f"{int((~mask).sum())} of {len(df)} rows of newdata have missing values in columns "
            f"{detail}; drop or fill them (predict returns NaN for them)"
        )
    rows = np.flatnonzero(mask)
    if rows.size == 0:
        return _empty(spec, groups, rows, len(df))
    sub = df if rows.size == len(df) else df.loc[mask].reset_index(drop=True)
    sub = conform_columns(strings_as_objects(sub, [c.name for c in spec.columns]), spec.columns)
    X = _fixed(spec, sub)
    gd = []
    for g in spec.groupings if groups else ():
        vals = np.column_stack([term_values(t, sub, spec.formula) for t in g.terms])
        gd.append(GroupingData(codes=codes_for_levels(sub, g.factors, g.levels), values=vals))
    off = None if off_arg is None else row_vector(off_arg, df, mask, "offset")
    for expr in spec.parsed.offsets:
        o = expression(expr, sub, spec.formula)
        off = o if off is None else off + o
    se = None
    if spec.parsed.se is not None:
        try:
            se = expression(spec.parsed.se, sub, spec.formula)
        except FormulaError:  # newdata without the se() column: no known SEs (not needed to predict)
            se = None
    return Design(
        y=np.full(len(sub), np.nan), X=X, groups=tuple(gd), offset=off, se=se, rows=rows, n_input=len(df)
    )
