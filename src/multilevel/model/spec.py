"""Frozen model specification: what a formula means once it has met the data.

A :class:`ModelSpec` records the fixed-effect design (formulaic's spec, so new data
can be materialized the same way), every data column the formula evaluates with
the kind and levels it had (so new data is encoded by the fitted levels, not by
its own dtypes), each grouping factor with its levels and terms, where the offset
and weights came from, and how the relative covariance parameters theta fill each
factor's template ``T`` (``Lambda = blockdiag(T_k for each level)``). The numbers
themselves live in a :class:`~multilevel.model.design.Design`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np

from ..formula import ParsedFormula

ARRAY_ARG = "<array>"  # weights= or offset= was given as an array, not a column name


@dataclass(frozen=True)
class ColumnSpec:
    """How one data column entered the formula's predictors (fixed part, random-term
    expressions, ``offset()`` terms).

    ``categorical`` columns keep the categories formulaic encoded, in its order
    (``levels``: the fitted values themselves, unused categories included) and the
    level names that had fitted rows (``observed``); new data is matched to them by
    name, so an integer 1 finds the level ``"1"``. ``contrasts`` names formulaic's
    coding where the column is encoded directly (``"treatment"``), else None.
    Numeric columns keep their dtype.
    """

    name: str
    categorical: bool
    dtype: str
    levels: tuple[Any, ...] = ()
    observed: tuple[str, ...] = ()
    contrasts: str | None = None


@dataclass(frozen=True)
class TermSpec:
    """One random-effects term of a grouping factor (one lme4 term)."""

    expr: str
    columns: tuple[str, ...]
    mm_spec: Any  # formulaic ModelSpec of the term's model matrix
    offset: int  # first column of this term inside its grouping block

    @property
    def q(self) -> int:
        return len(self.columns)


@dataclass(frozen=True)
class GroupingSpec:
    """A grouping factor with every term on it, merged into one block.

    Terms on the same factor (``(1 | g) + (0 + x | g)``) share one block whose
    template ``T`` is block diagonal, so the factor's part of ``Z'Z`` stays
    block diagonal per level.
    """

    name: str
    factors: tuple[str, ...]
    levels: tuple[str, ...]
    terms: tuple[TermSpec, ...]

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(c for t in self.terms for c in t.columns)

    @property
    def q(self) -> int:
        return sum(t.q for t in self.terms)

    @property
    def n_levels(self) -> int:
        return len(self.levels)

    @property
    def size(self) -> int:
        """Number of random effects of this factor (levels x columns)."""
        return self.q * self.n_levels


@dataclass(frozen=True)
class ThetaMap:
    """Where each element of theta goes: ``T[block][row, col] = theta[i]``.

    theta is ordered as lme4 orders it: terms by decreasing number of levels,
    then each term's lower triangle column by column.
    """

    block: np.ndarray
    row: np.ndarray
    col: np.ndarray

    @property
    def size(self) -> int:
        return int(self.block.size)

    @cached_property
    def lower_bounds(self) -> np.ndarray:
        """0 for the template diagonals, -inf for the rest (read-only: shared by every fit)."""
        lower = np.where(self.row == self.col, 0.0, -np.inf)
        lower.flags.writeable = False
        return lower

    def initial(self) -> np.ndarray:
        """lme4's start: identity templates (diagonal 1, off-diagonal 0)."""
        return np.where(self.row == self.col, 1.0, 0.0)

    def templates(self, theta: np.ndarray, qs: tuple[int, ...]) -> list[np.ndarray]:
        """The lower-triangular template T of every grouping block."""
        out = [np.zeros((q, q)) for q in qs]
        if len(qs) == 1:
            out[0][self.row, self.col] = theta
            return out
        for b, r, c, v in zip(self.block.tolist(), self.row.tolist(), self.col.tolist(), theta.tolist()):
            out[b][r, c] = v
        return out


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to rebuild the design for new data and to name results."""

    parsed: ParsedFormula
    family: str  # the family's registered name: get_family(spec.family) gives its declarations
    response: str
    fixed_spec: Any  # formulaic ModelSpec of the fixed-effect design
    fixed_names: tuple[str, ...]  # after rank-deficient columns were dropped
    dropped_fixed: tuple[str, ...]
    groupings: tuple[GroupingSpec, ...]
    theta_map: ThetaMap
    theta_names: tuple[str, ...]
    nobs: int
    n_missing: int = 0
    data_name: str = "data"  # what the summary's Data: line shows
    missing_by_column: dict[str, int] = field(default_factory=dict)
    weights: str | None = None  # the weights= column, ARRAY_ARG for an array, None for none
    offset: str | None = None  # the offset= column, ARRAY_ARG for an array, None for none
    columns: tuple[ColumnSpec, ...] = ()  # every column the predictors evaluate
    cluster: GroupingSpec | None = None  # a marginal model's clusters (no terms), else None

    @property
    def formula(self) -> str:
        return self.parsed.formula

    @property
    def has_offset(self) -> bool:
        """Whether the linear predictor has a known part (``offset=`` or ``offset()`` terms)."""
        return self.offset is not None or bool(self.parsed.offsets)

    def column(self, name: str) -> ColumnSpec:
        """The record of one predictor column (KeyError if the formula does not use it)."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def p(self) -> int:
        return len(self.fixed_names)

    @property
    def q_total(self) -> int:
        return sum(g.size for g in self.groupings)

    @cached_property
    def block_qs(self) -> tuple[int, ...]:
        return tuple(g.q for g in self.groupings)

    def templates(self, theta: np.ndarray) -> list[np.ndarray]:
        """Lower-triangular relative covariance templates, one per grouping block."""
        return self.theta_map.templates(np.atleast_1d(np.asarray(theta, dtype=float)), self.block_qs)
