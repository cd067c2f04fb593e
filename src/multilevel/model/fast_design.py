"""Model matrices of small, plain formulas with NumPy, as formulaic would build them.

formulaic's materializer costs ~2-3 ms a call (three pandas frames, its parser and
spec machinery), more than the whole optimization of a small LMM, and its import
(with ``scipy.sparse``) ~0.1 s. For formulas made only of an intercept, numeric
columns, their ``:`` / ``*`` products and categorical main effects (treatment
contrasts, with an intercept) :func:`fast_matrices` builds the same columns, in
formulaic's order, under formulaic's names, with the same floating-point values.
Anything else (functions, parentheses, ``-``, categorical interactions, other
dtypes) returns None and the caller asks formulaic.

formulaic's spec of the design is still what new data goes through: each part's
``model_spec`` is a :class:`~multilevel.model.matrices.DeferredSpec` that runs
formulaic on the fitted rows when first asked (prediction, reference grids, type
III hypotheses), so new data meets exactly the spec the formulaic path records.
"""

from __future__ import annotations

import keyword
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

from ..formula import ParsedFormula
from .columns import is_categorical
from .data import Columns, columns_of
from .matrices import DeferredSpec, FormulaicParts

Term = tuple[str, ...]  # the variables multiplied, in formulaic's order; () is the intercept


@dataclass(frozen=True)
class DenseMatrix:
    """A model matrix as the materializer reads one: values, column names, spec."""

    values: np.ndarray  # (n, k) float64
    columns: tuple[str, ...]
    model_spec: Any  # DeferredSpec: formulaic's spec, built when first asked

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.values.shape[0]), int(self.values.shape[1]))

    def to_numpy(self, dtype: Any = float) -> np.ndarray:
        return self.values


def _product(left: list[Term], right: list[Term]) -> list[Term]:
    """formulaic's ``L * R``: L, R and every left term times every right term."""
    cross = [tuple(dict.fromkeys(a + b)) for a in left for b in right]
    return left + right + cross


@lru_cache(maxsize=256)
def _terms(rhs: str) -> tuple[bool, tuple[Term, ...]] | None:
    """(intercept, terms) of a sum of ``1``, ``0``, names and their ``:`` / ``*``
    products, in formulaic's order (first occurrences, stable by degree); None for
    anything else."""
    if any(ch in rhs for ch in "()-/^%`~|{}[]'\"\\"):
        return None
    intercept, terms = True, []
    for piece in rhs.split("+"):
        piece = piece.strip()
        if piece in ("0", "1"):
            intercept = piece == "1"
            continue
        chain: list[Term] | None = None
        for factor in piece.split("*"):
            names = tuple(n.strip() for n in factor.split(":"))
            if not all(n.isidentifier() and not keyword.iskeyword(n) for n in names):
                return None
            if len(set(names)) < len(names):
                return None
            chain = [names] if chain is None else _product(chain, [names])
        terms += chain or []
    unique: dict[frozenset[str], Term] = {}
    for t in terms:
        unique.setdefault(frozenset(t), t)
    return intercept, tuple(sorted(unique.values(), key=len))


def _numeric(col: pd.Series) -> bool:
    return isinstance(col.dtype, np.dtype) and col.dtype.kind in "iuf"


def _levels(col: pd.Series) -> tuple[np.ndarray, list[str]] | None:
    """Codes and levels of a categorical column whose levels are all strings."""
    cat = col if isinstance(col.dtype, pd.CategoricalDtype) else col.astype("category")
    levels = cat.cat.categories.tolist()
    if not all(type(v) is str for v in levels):
        return None
    return cat.cat.codes.to_numpy(), levels


def _columns(
    intercept: bool, terms: tuple[Term, ...], df: pd.DataFrame, frame: Columns
) -> tuple[list[np.ndarray], list[str]] | None:
    """The columns of the terms and their names (None: a case left to formulaic)."""
    n = len(df)
    values, names = ([np.ones(n)], ["Intercept"]) if intercept else ([], [])
    for t in terms:
        if any(v not in df.columns or v == "Intercept" for v in t):
            return None
        cols = [frame[v] for v in t]
        if all(_numeric(c) for c in cols):
            prod = cols[0].to_numpy(dtype=float)
            for c in cols[1:]:
                prod = prod * c.to_numpy(dtype=float)
            values.append(prod)
            names.append(":".join(t))
            continue
        if len(t) > 1 or not intercept or not is_categorical(cols[0]):
            return None
        coded = _levels(cols[0])
        if coded is None:
            return None
        codes, levels = coded
        for j, lev in enumerate(levels[1:], start=1):
            values.append((codes == j).astype(float))
            names.append(f"{t[0]}[T.{lev}]")
    return values, names


def _dense(values: list[np.ndarray], n: int) -> np.ndarray:
    return np.column_stack(values) if values else np.zeros((n, 0))


def fast_matrices(
    parsed: ParsedFormula, sub: pd.DataFrame, joined: str, re_exprs: list[str], cols: Columns | None = None
) -> tuple[DenseMatrix, DenseMatrix, dict[str, DenseMatrix], dict[str, str]] | None:
    """formulaic's response, fixed-effect and random-term matrices of ``joined`` (the
    response, the fixed part and the random-term expressions, ``|``-separated), or
    None when the formula needs formulaic.

    Also returns the contrasts of the categorical columns encoded (``{"f": "treatment"}``).
    """
    if parsed.response is None or parsed.offsets or parsed.se is not None:
        return None
    frame = columns_of(sub, cols)
    resp = parsed.response.strip()
    if not resp.isidentifier() or resp not in sub.columns or not _numeric(frame[resp]):
        return None
    specs, parts = [], []
    for rhs in [parsed.fixed, *re_exprs]:
        spec = _terms(rhs)
        built = None if spec is None else _columns(*spec, sub, frame)
        if spec is None or built is None:
            return None
        specs.append(spec)
        parts.append(built)
    coded = {v: "treatment" for _, terms in specs for t in terms for v in t if not _numeric(frame[v])}
    source = FormulaicParts(joined, sub, parsed.formula)
    n = len(sub)
    lhs = DenseMatrix(frame[resp].to_numpy(dtype=float).reshape(n, 1), (resp,), None)
    mats = [
        DenseMatrix(_dense(vals, n), tuple(names), DeferredSpec(source, i))
        for i, (vals, names) in enumerate(parts)
    ]
    return lhs, mats[0], dict(zip(re_exprs, mats[1:])), coded
