"""Grouping factors: level codes, the random-effects blocks, and where theta goes.

``factor_codes`` codes the (interaction of the) grouping columns as R's
``factor()`` does; ``codes_for_levels`` codes new data against fitted levels
(new levels get negative codes); ``grouping_blocks`` merges the terms on each factor
into one block and lays theta out in lme4's order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from ..formula import ParsedFormula, RandomTerm
from .columns import level_name
from .data import ArrayColumn, Columns, check_finite, columns_of
from .matrices import model_matrix
from .spec import GroupingSpec, TermSpec, ThetaMap


def factor_codes(
    df: pd.DataFrame, factors: tuple[str, ...], cols: Columns | None = None
) -> tuple[np.ndarray, tuple[str, ...]]:
    """Codes and level names of the (interaction of the) grouping columns.

    Categorical columns keep their level order; others are sorted (as R's
    ``factor()`` does). Unused levels are dropped; interaction levels are
    named ``"a:b"`` with the first factor varying slowest.
    """
    cols = columns_of(df, cols)
    combined = np.zeros(len(df), dtype=np.int64)
    level_lists: list[list[str]] = []
    for name in factors:
        col = cols[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            codes = np.asarray(col.array.codes, dtype=np.int64)  # the Categorical's own codes
            levels = [level_name(v) for v in col.dtype.categories.to_numpy(dtype=object).tolist()]
        elif isinstance(col.dtype, np.dtype) and col.dtype.kind in "iub":
            # NumPy integers: the sorted distinct values, as pandas' factorize(sort=True)
            uniques, codes = np.unique(col.to_numpy(), return_inverse=True)
            codes = codes.astype(np.int64)
            levels = list(map(str, uniques.tolist()))  # integers (and booleans) name themselves
        else:
            codes, uniques = pd.factorize(col.to_numpy() if isinstance(col, ArrayColumn) else col, sort=True)
            codes = codes.astype(np.int64)
            levels = [level_name(v) for v in uniques.tolist()]
        combined = combined * len(levels) + codes
        level_lists.append(levels)
    if len(factors) == 1 and np.all(np.bincount(combined, minlength=len(level_lists[0])) > 0):
        return _compact(combined), tuple(level_lists[0])  # every level used: the codes are final
    used, inverse = np.unique(combined, return_inverse=True)
    names = []
    for code in used:
        parts = []
        for levels in reversed(level_lists):
            code, r = divmod(int(code), len(levels))
            parts.append(levels[r])
        names.append(":".join(reversed(parts)))
    return _compact(inverse), tuple(names)


def _compact(codes: np.ndarray) -> np.ndarray:
    """Level codes as int32 where their levels allow (half the memory of int64: 100 MB
    per factor at 27 million rows)."""
    return codes.astype(np.int32 if codes.size == 0 or codes.max() < 2**31 - 1 else np.int64)


def codes_for_levels(df: pd.DataFrame, factors: tuple[str, ...], levels: tuple[str, ...]) -> np.ndarray:
    """Codes of new data against known levels; new levels get -1, -2, ... (one code each)."""
    keys = df[list(factors)].astype(object).map(level_name)
    joined = keys.iloc[:, 0] if len(factors) == 1 else keys.apply(":".join, axis=1)
    lookup = {lev: i for i, lev in enumerate(levels)}
    new: dict[str, int] = {}
    out = np.empty(len(df), dtype=np.int64)
    for i, k in enumerate(joined):
        code = lookup.get(k)
        if code is None:
            code = new.setdefault(k, -1 - len(new))
        out[i] = code
    return out


def lme4_order(terms: list[RandomTerm], nlevels: list[int]) -> list[int]:
    """lme4's term order: by decreasing levels (``rev(order(nl))``) if any differ."""
    if all(a == nlevels[0] for a in nlevels):
        return list(range(len(terms)))
    return list(reversed(sorted(range(len(terms)), key=lambda i: nlevels[i])))


def term_values(
    t: TermSpec, df: pd.DataFrame, formula: str, cache: dict[str, Any] | None = None
) -> np.ndarray:
    """The columns of one random term on the rows of ``df`` (``cache``: matrices already built)."""
    if t.mm_spec is None:  # intercept-only term: one on every row, a read-only view of one number
        return ones_view((len(df), 1))
    m = cache[t.expr] if cache and t.expr in cache else model_matrix(t.mm_spec, df, formula)
    vals = np.asarray(m.to_numpy(dtype=float))
    check_finite(f"random-effects term ({t.expr})", vals)
    return vals


def ones_view(shape: tuple[int, int]) -> np.ndarray:
    """A read-only ``shape`` of ones that stores one number (an intercept's column: a copy
    is 200 MB at 27 million rows)."""
    return np.broadcast_to(np.ones((1, 1)), shape)


def block_values(
    terms: Sequence[TermSpec], df: pd.DataFrame, formula: str, cache: dict[str, Any] | None = None
) -> np.ndarray:
    """A grouping block's term columns side by side; one term's as it is (an intercept's
    stays a :func:`ones_view`)."""
    parts = [term_values(t, df, formula, cache) for t in terms]
    return parts[0] if len(parts) == 1 else np.column_stack(parts)


def grouping_blocks(
    parsed: ParsedFormula, df: pd.DataFrame, re_mats: dict[str, Any], cols: Columns | None = None
) -> tuple[tuple[GroupingSpec, ...], ThetaMap, tuple[str, ...], dict[str, np.ndarray]]:
    """The grouping blocks of the random terms, the theta layout and names, and each
    factor's row codes. ``re_mats`` holds the model matrices already built per term
    expression."""
    levels: dict[str, tuple[str, ...]] = {}
    codes_by_group = {}
    for t in parsed.random:
        if t.group not in levels:
            codes_by_group[t.group], levels[t.group] = factor_codes(df, t.factors, cols)
    blocks, tm, names = blocks_for_levels(parsed, df, re_mats, levels)
    return blocks, tm, names, codes_by_group


def blocks_for_levels(
    parsed: ParsedFormula, df: pd.DataFrame, re_mats: dict[str, Any], levels: dict[str, tuple[str, ...]]
) -> tuple[tuple[GroupingSpec, ...], ThetaMap, tuple[str, ...]]:
    """The grouping blocks in lme4's order and the theta layout and names, from each
    factor's levels (the data's, or a partitioned table's first pass); a factor with
    fewer than 2 levels is an error."""
    terms = list(parsed.random)
    for t in terms:
        if len(levels[t.group]) < 2:
            raise DataError(
                f"grouping factor {t.group!r} has {len(levels[t.group])} level in the data used; "
                "a random effect needs at least 2 levels (drop the term or check the data)"
            )
    order = lme4_order(terms, [len(levels[t.group]) for t in terms])
    blocks = _blocks(parsed, df, re_mats, [terms[i] for i in order], levels)
    tm, names = _theta_layout([terms[i] for i in order], blocks)
    return blocks, tm, names


def _blocks(
    parsed: ParsedFormula,
    df: pd.DataFrame,
    re_mats: dict[str, Any],
    terms: list[RandomTerm],
    levels: dict[str, tuple[str, ...]],
) -> tuple[GroupingSpec, ...]:
    """One block per grouping factor (in the order of ``terms``), its terms side by side."""
    by_group: dict[str, list[TermSpec]] = {}
    for t in terms:
        if t.expr == "1":
            mm_spec, colnames = None, ["Intercept"]
        else:
            m = re_mats[t.expr] if t.expr in re_mats else model_matrix(t.expr, df, parsed.formula)
            mm_spec, colnames = m.model_spec, [str(c) for c in m.columns]
        if not colnames:
            raise FormulaError(f"random-effects term {t} has no columns", parsed.formula, t.span)
        block = by_group.setdefault(t.group, [])
        dup = {c for ts in block for c in ts.columns}.intersection(colnames)
        if dup:
            raise FormulaError(
                f"random effect {', '.join(sorted(dup))} appears twice for grouping factor "
                f"{t.group!r}; each column may enter one term per factor",
                parsed.formula,
                t.span,
            )
        offset = sum(ts.q for ts in block)
        block.append(TermSpec(expr=t.expr, columns=tuple(colnames), mm_spec=mm_spec, offset=offset))
    factors = {t.group: t.factors for t in reversed(terms)}  # the first term's factors
    return tuple(
        GroupingSpec(name=name, factors=factors[name], levels=levels[name], terms=tuple(ts))
        for name, ts in by_group.items()
    )


def _theta_layout(
    terms: list[RandomTerm], blocks: tuple[GroupingSpec, ...]
) -> tuple[ThetaMap, tuple[str, ...]]:
    """theta in lme4 order: terms in sorted order, each lower triangle column-wise."""
    index = {g.name: b for b, g in enumerate(blocks)}
    block, rows, cols, names = [], [], [], []
    counters = dict.fromkeys(index, 0)
    for t in terms:
        b = index[t.group]
        tspec = blocks[b].terms[counters[t.group]]
        counters[t.group] += 1
        for c in range(tspec.q):
            for r in range(c, tspec.q):
                block.append(b)
                rows.append(tspec.offset + r)
                cols.append(tspec.offset + c)
                lab = tspec.columns[c] if r == c else f"{tspec.columns[r]}.{tspec.columns[c]}"
                names.append(f"{t.group}.{lab}")
    tm = ThetaMap(
        block=np.array(block, dtype=np.int64),
        row=np.array(rows, dtype=np.int64),
        col=np.array(cols, dtype=np.int64),
    )
    return tm, tuple(names)
