"""Hypotheses about the fixed effects: the terms of the fixed part and their contrast matrices.

A contrast matrix ``L`` has one row per linear function of beta (over the fitted,
kept coefficients). :func:`term_hypotheses` gives one per term of the fixed part, as
lmerTest's ``anova()`` builds them:

- type III (its default, more than one term): the "SAS" hypotheses. Each term of
  the cell-means design (``~ 0 + term``, every level of every factor, plus the
  intercept) is projected on the fitted design ``X``; a term's columns are made
  orthogonal to those of every term that contains it (same numeric variables,
  strictly more factors), and the rows kept are the cells that are columns of the
  treatment-coded ``X``. With treatment coding and no interactions this is the
  test that the term's coefficients are all zero.
- type I (lmerTest's choice with a single term): rows of the Doolittle
  decomposition of ``X'X``.

Rounding follows R (``zapsmall`` to 7 significant digits), so that Satterthwaite's
multi-df test, which depends on the basis of the rows, gets lmerTest's rows.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ModelError
from .spec import ModelSpec

INTERCEPT = "Intercept"


@dataclass(frozen=True)
class FixedTerm:
    """One term of the fixed part (``Time``, ``Cu``, ``Time:Cu``)."""

    name: str
    variables: tuple[str, ...]  # the factors multiplied (formulaic expressions)
    numeric: frozenset[str]  # those of them that are numeric
    columns: tuple[int, ...]  # positions among the kept coefficients (spec.fixed_names)

    @property
    def order(self) -> int:
        return len(self.variables)


def fixed_terms(spec: ModelSpec) -> list[FixedTerm]:
    """The terms of the fixed part other than the intercept, in formulaic's order.

    Columns dropped for rank deficiency are not among a term's columns; a term all
    of whose columns were dropped keeps an empty tuple.

    Examples
    --------
    >>> from multilevel.datasets import load_dataset
    >>> from multilevel.model.design import build_model
    >>> spec, _ = build_model("Weight ~ Time * Cu + (1 | Pig)", load_dataset("dietox"))
    >>> [(t.name, t.columns) for t in fixed_terms(spec)]
    [('Time', (1,)), ('Cu', (2, 3)), ('Time:Cu', (4, 5))]
    """
    fs = spec.fixed_spec
    full = list(fs.column_names)
    kept = {name: i for i, name in enumerate(spec.fixed_names)}
    kinds = {name: state[0] for name, state in fs.encoder_state.items()}
    out = []
    for term, idx in fs.term_indices.items():
        name = str(term)
        if name == "1":
            continue
        variables = tuple(str(f) for f in term.factors)
        numeric = frozenset(v for v in variables if str(getattr(kinds.get(v), "value", "")) == "numerical")
        cols = tuple(kept[full[i]] for i in idx if full[i] in kept)
        out.append(FixedTerm(name=name, variables=variables, numeric=numeric, columns=cols))
    return out


def has_intercept(spec: ModelSpec) -> bool:
    """Whether the fixed part has an intercept column.

    Examples
    --------
    >>> from multilevel.datasets import load_dataset
    >>> from multilevel.model.design import build_model
    >>> has_intercept(build_model("Weight ~ 0 + Cu + (1 | Pig)", load_dataset("dietox"))[0])
    False
    """
    return INTERCEPT in spec.fixed_names


def find_term(spec: ModelSpec, name: str) -> FixedTerm:
    """The fixed term called ``name``; a ``ModelError`` naming the closest terms if none is.

    Examples
    --------
    >>> from multilevel.datasets import load_dataset
    >>> from multilevel.model.design import build_model
    >>> spec, _ = build_model("Weight ~ Time + Cu + (1 | Pig)", load_dataset("dietox"))
    >>> find_term(spec, "Cu").columns
    (2, 3)
    """
    terms = fixed_terms(spec)
    for t in terms:
        if t.name == name or set(t.name.split(":")) == set(name.split(":")):
            return t
    names = [t.name for t in terms]
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    raise ModelError(f"{name!r} is not a fixed-effect term of the model; its terms are {names}{hint}")


def zapsmall(x: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's ``zapsmall``: round to ``digits`` significant digits of the largest entry.

    Examples
    --------
    >>> zapsmall(np.array([1.0, 1e-12, 0.333333333])).tolist()
    [1.0, 0.0, 0.3333333]
    """
    x = np.asarray(x, dtype=float)
    mx = float(np.max(np.abs(x))) if x.size else 0.0
    if mx == 0 or not np.isfinite(mx):
        return np.round(x, digits) + 0.0  # + 0.0: no negative zeros
    return np.round(x, max(0, digits - int(np.ceil(np.log10(mx))))) + 0.0


def doolittle(x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Unit lower-triangular ``L`` of the Doolittle decomposition ``x = L U`` (lmerTest's,
    with its absolute zero threshold ``eps``).

    Examples
    --------
    >>> doolittle(np.array([[4.0, 2.0], [2.0, 3.0]])).tolist()
    [[1.0, 0.0], [0.5, 1.0]]
    """
    n = x.shape[0]
    L = np.eye(n)
    U = np.zeros((n, n))
    for i in range(n):
        U[i, :] = x[i, :] - L[i, :i] @ U[:i, :]
        if i + 1 < n:
            col = x[i + 1 :, i] - L[i + 1 :, :i] @ U[:i, i]
            L[i + 1 :, i] = 0.0 if abs(U[i, i]) < eps else col / U[i, i]
    L[np.abs(L) < eps] = 0.0
    return L


def type1_hypotheses(spec: ModelSpec, X: np.ndarray) -> dict[str, np.ndarray]:
    """Sequential (type I) hypotheses: rows of the Doolittle factor of ``X'X`` per term.

    Examples
    --------
    >>> from multilevel.datasets import load_dataset
    >>> from multilevel.model.design import build_model
    >>> spec, d = build_model("Reaction ~ Days + (Days | Subject)", load_dataset("sleepstudy"))
    >>> type1_hypotheses(spec, d.X)["Days"].tolist()
    [[0.0, 1.0]]
    """
    p = X.shape[1]
    terms = fixed_terms(spec)
    if p == 0 or (p == 1 and has_intercept(spec)):
        return {t.name: np.zeros((0, p)) for t in terms}
    L = np.ones((1, 1)) if p == 1 else doolittle(X.T @ X).T
    return {t.name: L[list(t.columns), :] for t in terms}


def _contains(inner: FixedTerm, outer: FixedTerm) -> bool:
    a, b = set(inner.variables), set(outer.variables)
    return a < b and inner.numeric == outer.numeric


def _cell_design(spec: ModelSpec, frame: pd.DataFrame, term: FixedTerm) -> tuple[np.ndarray, list[str]]:
    """The term's cell-means columns (every level of each factor) on the fitted rows."""
    from formulaic import model_matrix

    try:
        mm = model_matrix(f"0 + {term.name}", frame, ensure_full_rank=False, na_action="ignore")
    except Exception as exc:  # formulaic raises many exception types
        raise ModelError(f"cannot build the cell design of term {term.name!r}: {exc}") from exc
    return np.asarray(mm.to_numpy(dtype=float)), list(mm.columns)


def _cell_name(column: str) -> str:
    """A treatment-coded column's name as a cell of the cell-means design."""
    return re.sub(r"\[T\.", "[", column)


def type3_hypotheses(spec: ModelSpec, X: np.ndarray, frame: pd.DataFrame) -> dict[str, np.ndarray]:
    """lmerTest's type III hypotheses (``extract_contrasts_type3``) for treatment-coded factors.

    Examples
    --------
    >>> from multilevel.datasets import load_dataset
    >>> from multilevel.model.design import build_model
    >>> spec, d = build_model("Weight ~ Time * Cu + (1 | Pig)", load_dataset("dietox"))
    >>> type3_hypotheses(spec, d.X, d.frame)["Time"].round(4).tolist()  # the average slope
    [[0.0, 1.0, 0.0, 0.0, 0.3333, 0.3333]]
    """
    terms = fixed_terms(spec)
    blocks, names = [], []
    if has_intercept(spec):
        blocks.append(np.ones((X.shape[0], 1)))
        names.append(INTERCEPT)
    for t in terms:
        D, cell_names = _cell_design(spec, frame, t)
        blocks.append(D)
        names.extend(cell_names)
    rd = np.hstack(blocks)
    L0 = zapsmall(np.linalg.lstsq(X, rd, rcond=None)[0].T)  # (cells, p)
    for t in sorted(terms, key=lambda t: -t.order):
        outer = [u for u in terms if _contains(t, u)]
        if not outer or not t.columns:
            continue
        cols = np.asarray(t.columns, dtype=np.int64)
        by = np.asarray([c for u in outer for c in u.columns], dtype=np.int64)
        A, Y = L0[:, by], L0[:, cols]
        L0[:, cols] = zapsmall(Y - A @ np.linalg.lstsq(A, Y, rcond=None)[0])
    position = {n: i for i, n in enumerate(names)}
    rows = []
    for c in spec.fixed_names:
        cell = position.get(_cell_name(c))
        if cell is None:
            raise ModelError(
                f"type III hypotheses need treatment-coded factors; coefficient {c!r} is not a cell "
                "of the term's cell-means design. Test the contrasts you mean with test(L)"
            )
        rows.append(cell)
    L = L0[rows]
    out = {}
    for t in terms:
        Lt = L[:, np.asarray(t.columns, dtype=np.int64)].T
        out[t.name] = Lt[np.abs(Lt).sum(axis=1) > 1e-8]
    return out


def term_hypotheses(spec: ModelSpec, X: np.ndarray, frame: pd.DataFrame | None, type: int = 3) -> dict:
    """One contrast matrix per fixed term, as lmerTest's ``anova(type = ...)``.

    ``type=3`` (default) uses type I when the model has a single term or coefficient,
    as lmerTest does. ``frame`` (the fitted rows' predictor columns) is needed for type III.

    Examples
    --------
    >>> from multilevel.datasets import load_dataset
    >>> from multilevel.model.design import build_model
    >>> spec, d = build_model("Weight ~ Time + Cu + (1 | Pig)", load_dataset("dietox"))
    >>> term_hypotheses(spec, d.X, d.frame)["Cu"].tolist()
    [[0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
    """
    if type not in (1, 3):
        raise ModelError(f"type must be 1 or 3 (lmerTest's type I or III), got {type!r}")
    terms = fixed_terms(spec)
    if type == 1 or X.shape[1] <= 1 or len(terms) <= 1:
        return type1_hypotheses(spec, X)
    if frame is None:
        raise ModelError("type III hypotheses need the fitted rows' predictor columns (design.frame)")
    return type3_hypotheses(spec, X, frame)


def contrast_matrix(spec: ModelSpec, L: Any) -> np.ndarray:
    """``L`` as a (rows, p) float array over the kept coefficients.

    ``L`` may be a vector or matrix with p columns, a ``DataFrame`` / ``Series`` /
    dict keyed by coefficient names (missing names are 0), or a term name.
    A weight on a coefficient dropped for rank deficiency is not estimable.

    Examples
    --------
    >>> from multilevel.datasets import load_dataset
    >>> from multilevel.model.design import build_model
    >>> spec, _ = build_model("Weight ~ Time + Cu + (1 | Pig)", load_dataset("dietox"))
    >>> contrast_matrix(spec, {"Cu[T.Cu035]": 1, "Cu[T.Cu175]": -1}).tolist()
    [[0.0, 0.0, 1.0, -1.0]]
    """
    names = list(spec.fixed_names)
    if isinstance(L, str):
        t = find_term(spec, L)
        out = np.zeros((len(t.columns), len(names)))
        out[np.arange(len(t.columns)), list(t.columns)] = 1.0
        return out
    if isinstance(L, dict):
        L = pd.Series(L, dtype=float)
    if isinstance(L, pd.Series):
        L = L.to_frame().T
    if isinstance(L, pd.DataFrame):
        return _named(spec, L)
    A = np.atleast_2d(np.asarray(L, dtype=float))
    if A.ndim != 2 or A.shape[1] != len(names):
        raise ModelError(
            f"L must have one column per fixed effect ({len(names)}: {names}), got shape {A.shape}"
        )
    if not np.all(np.isfinite(A)):
        raise ModelError("L has missing or infinite entries")
    return A


def _named(spec: ModelSpec, L: pd.DataFrame) -> np.ndarray:
    names = list(spec.fixed_names)
    dropped = [c for c in L.columns if c in spec.dropped_fixed and np.any(L[c].to_numpy(dtype=float) != 0)]
    if dropped:
        raise ModelError(
            f"the contrast is not estimable: it puts weight on {dropped}, dropped from the design as "
            "linear combinations of other columns (rank deficiency)"
        )
    unknown = [c for c in L.columns if c not in names and c not in spec.dropped_fixed]
    if unknown:
        hints = []
        for c in unknown:
            close = difflib.get_close_matches(str(c), names, n=2, cutoff=0.5)
            hints.append(f"{c!r}" + (f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""))
        raise ModelError(f"L names coefficients the model does not have: {', '.join(hints)}; it has {names}")
    return L.reindex(columns=names, fill_value=0.0).to_numpy(dtype=float)
