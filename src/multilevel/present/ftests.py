"""Text and JSON-able records of F tables, marginal means and their contrasts.

The tables themselves are computed by the fits (``anova``, ``emmeans``,
``Emmeans.contrast``); this module only lays them out as lmerTest and emmeans print
them.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from .text import _pval, _stars, _table


def _num(v: Any, digits: int = 5) -> str:
    if isinstance(v, str):
        return v
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "NA"
    if isinstance(v, float) and math.isinf(v):
        return "Inf"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return f"{float(v):.{digits}g}"


def format_anova(table: pd.DataFrame) -> str:
    """An anova table as lmerTest prints it.

    Examples
    --------
    >>> import multilevel
    >>> m = multilevel.fit("Weight ~ Time + Cu + (1 | Pig)", multilevel.load_dataset("dietox"))
    >>> print(format_anova(m.anova()).splitlines()[0])
    Type III Analysis of Variance Table with Satterthwaite's method
    """
    rows = [["", "Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)", ""]]
    for name, r in table.iterrows():
        p = float(r["Pr(>F)"])
        rows.append(
            [
                str(name),
                _num(r["Sum Sq"]),
                _num(r["Mean Sq"]),
                _num(int(r["NumDF"])),
                _num(r["DenDF"]),
                _num(r["F value"]),
                "NA" if math.isnan(p) else _pval(p),
                "" if math.isnan(p) else _stars(p),
            ]
        )
    lines = [table.attrs.get("heading", "Analysis of Variance Table"), *_table(rows, ["l"] + ["r"] * 7)]
    lines.append("---\nSignif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1")
    return "\n".join(lines)


def _level(v: Any) -> str:
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def _frame_lines(frame: pd.DataFrame) -> list[str]:
    rows = [[str(c) for c in frame.columns]]
    for _, r in frame.iterrows():
        rows.append([_num(v) if not isinstance(v, str) else v for v in r.tolist()])
    numeric = [pd.api.types.is_numeric_dtype(frame[c]) for c in frame.columns]
    return _table(rows, ["r" if n else "l" for n in numeric])


def _by_groups(frame: pd.DataFrame, by: list[str]) -> list[tuple[str, pd.DataFrame]]:
    if not by:
        return [("", frame)]
    keys = frame[by].map(_level).agg(", ".join, axis=1)
    return [
        (", ".join(f"{b} = {v}" for b, v in zip(by, k.split(", "))), frame[keys == k].drop(columns=by))
        for k in dict.fromkeys(keys)
    ]


def format_emmeans(emm: Any) -> str:
    """Marginal means as emmeans prints them (one block per ``by`` group).

    Examples
    --------
    >>> import multilevel
    >>> m = multilevel.fit("Weight ~ Time + Cu + (1 | Pig)", multilevel.load_dataset("dietox"))
    >>> print(format_emmeans(m.emmeans("Cu")).splitlines()[0])
     Cu    emmean     SE     df lower.CL upper.CL
    """
    by = list(emm.by)
    lines: list[str] = []
    for title, block in _by_groups(emm.table, by):
        if title:
            lines.append(f"{title}:")
        lines += _frame_lines(block)
        lines.append("")
    method = {"kenward-roger": "kenward-roger", "satterthwaite": "satterthwaite"}.get(
        emm.method, "asymptotic"
    )
    lines.append(f"Degrees-of-freedom method: {method}")
    scale = "the response scale (back-transformed)" if emm.scale == "response" else "the link scale"
    lines.append(f"Results are given on {scale}; confidence level used: {emm.level:g}")
    return "\n".join(lines)


def format_contrasts(table: pd.DataFrame, by: list[str] | None = None) -> str:
    """Contrasts of marginal means, with the adjustment used.

    Examples
    --------
    >>> import multilevel
    >>> m = multilevel.fit("Weight ~ Time + Cu + (1 | Pig)", multilevel.load_dataset("dietox"))
    >>> print(format_contrasts(m.emmeans("Cu").contrast()).splitlines()[-1])
    P value adjustment: tukey
    """
    lines: list[str] = []
    for title, block in _by_groups(table, [b for b in (by or []) if b in table.columns]):
        if title:
            lines.append(f"{title}:")
        lines += _frame_lines(block)
        lines.append("")
    lines.append(f"P value adjustment: {table.attrs.get('adjust', 'none')}")
    return "\n".join(lines)


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows as plain JSON-able dicts (NaN and infinities as None / strings).

    Examples
    --------
    >>> records(pd.DataFrame({"a": [1.0, float("inf")], "b": ["x", "y"]}))
    [{'a': 1.0, 'b': 'x'}, {'a': 'Inf', 'b': 'y'}]
    """
    out = []
    for row in frame.to_dict("records"):
        clean = {}
        for k, v in row.items():
            if isinstance(v, (float, np.floating)):
                v = float(v)
                clean[str(k)] = None if math.isnan(v) else ("Inf" if math.isinf(v) else v)
            elif isinstance(v, np.integer):
                clean[str(k)] = int(v)
            else:
                clean[str(k)] = v if isinstance(v, (str, int, bool)) or v is None else str(v)
        out.append(clean)
    return out
