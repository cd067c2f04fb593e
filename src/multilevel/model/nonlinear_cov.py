"""Random effects correlated across the parameters of a nonlinear model (brms' ``|ID|``).

``params={"Asym": "1 + (1 | p | Tree)", "xmid": "1 + (1 | p | Tree)"}`` gives the two
parameters' effects by tree one joint covariance matrix (brms' ``(1 | p | Tree)``;
nlme's default ``pdSymm(Asym + xmid ~ 1)``). Each parameter keeps its own block of
effects in ``u``; the blocks joined by an ID form one *covariance group*, whose
relative factor is lower-triangular over all the group's columns, and ``Lambda``
links their effects level by level. A block on its own is a group of one, with its
own formula's template (lme4's).

Examples
--------
>>> strip_ids("1 + (1 | p | Tree)")
('1 + (1 | Tree)', [('Tree', 'p')])
"""

from __future__ import annotations

import re

import numpy as np

from ..errors import FormulaError

_ID_TERM = re.compile(r"\(([^()|]+)\|\s*([A-Za-z_.][\w.]*)\s*\|([^()|]+)\)")


def strip_ids(formula: str) -> tuple[str, list[tuple[str, str]]]:
    """The formula with each ``(terms | ID | group)`` written ``(terms | group)``, and the
    (group, ID) pairs found."""
    found: list[tuple[str, str]] = []

    def repl(m: re.Match[str]) -> str:
        group = m.group(3).strip()
        if not re.fullmatch(r"[A-Za-z_.][\w.]*", group):
            raise FormulaError(
                f"a term with an ID, ({m.group(1).strip()} | {m.group(2)} | {group}), needs a plain grouping "
                "factor (a column name); build the interaction as a column first",
                formula,
                (m.start(), m.end()),
            )
        found.append((group, m.group(2)))
        return f"({m.group(1).strip()} | {group})"

    return _ID_TERM.sub(repl, formula), found


def covariance_groups(
    block_keys: list[tuple[int, str]],
    ids: dict[int, list[tuple[str, str]]],
    n_terms: dict[tuple[int, str], int],
) -> list[tuple[int, ...]]:
    """Blocks (param, grouping) joined by a shared (grouping, ID), in block order; the
    others alone. ``n_terms``: terms on each block (an ID'd term must be alone on it)."""
    by_id: dict[tuple[str, str], list[int]] = {}
    for k, pairs in ids.items():
        for group, ident in pairs:
            if n_terms.get((k, group), 0) != 1:
                raise FormulaError(
                    f"a term with an ID on {group!r} must be the only term on {group!r} in its "
                    "parameter's formula (the ID correlates all of that parameter's effects by "
                    f"{group!r} with the other parameters')"
                )
            by_id.setdefault((group, ident), []).append(block_keys.index((k, group)))
    joined = {b: tuple(sorted(m)) for m in by_id.values() for b in m}
    groups: list[tuple[int, ...]] = []
    for b in range(len(block_keys)):
        g = joined.get(b, (b,))
        if g[0] == b:
            groups.append(g)
    return groups


def full_template(q: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of a lower-triangular q x q template, column by column (lme4's order)."""
    rows, cols = [], []
    for c in range(q):
        for r in range(c, q):
            rows.append(r)
            cols.append(c)
    return np.asarray(rows, np.int64), np.asarray(cols, np.int64)
