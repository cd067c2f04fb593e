"""Estimated marginal means (emmeans) on the reference grid of a fitted model.

The reference grid holds every factor of the fixed part at each of its fitted levels
and every numeric predictor at its mean over the fitted rows (or at the values given
in ``at=``), as R's emmeans builds it. A marginal mean for a combination of the
``specs`` factors (within each ``by`` group) is the weighted average of the grid's
predictions over the other factors: ``"equal"`` weights, or ``"proportional"`` to the
fitted rows' frequencies of those other factors' combinations. Each mean is a linear
function ``k'beta``; its SE is ``sqrt(k'Vk)`` and its df comes from the fit (Kenward-
Roger or Satterthwaite for linear mixed models, infinite for GLMMs). On the response
scale estimates are back-transformed and SEs follow the delta method, with the
confidence limits back-transformed from the link scale. A grid cell whose row of X is
not in the row space of the fitted design (a missing cell of a rank-deficient model)
is not estimable: the means that need it are NaN.

This module knows nothing of how beta, V or the df were computed: a fit passes them in
(:func:`emmeans`), so linear and generalized mixed models share it.
"""

from __future__ import annotations

import difflib
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ModelError
from .columns import names_in
from .matrices import model_matrix
from .newdata import design_for
from .pvalues import t_quantile
from .spec import ModelSpec

WEIGHTS = ("equal", "proportional")
DfFunction = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class ReferenceGrid:
    """The grid's cells (``grid``), their rows of X, which are estimable, and how many
    fitted rows fall in each cell's factor combination."""

    grid: pd.DataFrame
    X: np.ndarray
    estimable: np.ndarray
    counts: np.ndarray
    factors: tuple[str, ...]
    covariates: tuple[str, ...]


def _coded_numbers(spec: ModelSpec, frame: pd.DataFrame) -> set[str]:
    """Numeric data columns that the fixed part encodes as categories (``C(period)``)."""
    out = set()
    for expr, state in spec.fixed_spec.encoder_state.items():
        if str(getattr(state[0], "value", "")) != "categorical":
            continue
        cols = names_in(str(expr), set(frame.columns))
        if len(cols) == 1 and not spec.column(cols[0]).categorical:
            out.add(cols[0])
    return out


def _variables(spec: ModelSpec, frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Factors and numeric predictors of the fixed part (data column names)."""
    fixed = list(dict.fromkeys(names_in(spec.parsed.fixed, set(frame.columns))))
    coded = _coded_numbers(spec, frame)
    factors = [c.name for c in spec.columns if c.name in fixed and (c.categorical or c.name in coded)]
    numeric = [c.name for c in spec.columns if c.name in fixed and c.name not in factors]
    return factors, numeric


def is_factor(spec: ModelSpec, frame: pd.DataFrame, name: str) -> bool:
    return spec.column(name).categorical or name in _coded_numbers(spec, frame)


def _levels(spec: ModelSpec, frame: pd.DataFrame, name: str) -> list[Any]:
    """A factor's fitted levels in the model's order (sorted values for ``C(number)``)."""
    from .columns import level_name

    col = spec.column(name)
    if not col.categorical:
        return sorted(pd.unique(frame[name]).tolist())
    return [v for v in col.levels if level_name(v) in set(col.observed)]


def _grid_values(spec: ModelSpec, frame: pd.DataFrame, at: dict[str, Any]) -> dict[str, list[Any]]:
    factors, numeric = _variables(spec, frame)
    known = factors + numeric
    unknown = [k for k in at if k not in known]
    if unknown:
        raise ModelError(_not_a_variable(unknown[0], known, "at="))
    values: dict[str, list[Any]] = {}
    for name in factors:
        levels = _levels(spec, frame, name)
        if name in at:
            wanted = [str(v) for v in np.atleast_1d(at[name])]
            bad = [w for w in wanted if w not in [str(v) for v in levels]]
            if bad:
                raise ModelError(
                    f"at={{{name!r}: ...}} has levels {bad} the model was not fitted on: {levels}"
                )
            levels = [v for v in levels if str(v) in wanted]
        values[name] = levels
    for name in numeric:
        default = [float(pd.to_numeric(frame[name]).mean())]
        values[name] = [float(v) for v in np.atleast_1d(at[name])] if name in at else default
    return values


def _not_a_variable(name: str, known: list[str], where: str) -> str:
    close = difflib.get_close_matches(name, known, n=2, cutoff=0.5)
    hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
    return f"{where} names {name!r}, which is not a predictor of the fixed part ({known}){hint}"


def reference_grid(spec: ModelSpec, frame: pd.DataFrame, at: dict[str, Any] | None = None) -> ReferenceGrid:
    """emmeans's ``ref_grid``: factors at their levels, numeric predictors at their means.

    Examples
    --------
    >>> from multilevel.datasets import load_dataset
    >>> from multilevel.model.design import build_model
    >>> spec, d = build_model("Weight ~ Time + Cu + (1 | Pig)", load_dataset("dietox"))
    >>> rg = reference_grid(spec, d.frame)
    >>> rg.grid.shape, round(float(rg.grid["Time"][0]), 3)
    ((3, 2), 6.481)
    """
    at = dict(at or {})
    values = _grid_values(spec, frame, at)
    names = list(values)
    # first variable varies fastest, as emmeans orders its grid
    combos = list(itertools.product(*[values[n] for n in reversed(names)]))
    grid = pd.DataFrame([tuple(reversed(c)) for c in combos], columns=names)
    factors = [n for n in names if is_factor(spec, frame, n)]
    full = _with_other_columns(spec, frame, grid)
    X = design_for(spec, full, groups=False, offset=_zero_offset(spec, len(grid))).X
    return ReferenceGrid(
        grid=grid,
        X=X,
        estimable=_estimable(spec, frame, full),
        counts=_cell_counts(frame, grid, factors),
        factors=tuple(factors),
        covariates=tuple(n for n in names if n not in factors),
    )


def _zero_offset(spec: ModelSpec, n: int) -> np.ndarray | None:
    return np.zeros(n) if spec.offset is not None else None


def _with_other_columns(spec: ModelSpec, frame: pd.DataFrame, grid: pd.DataFrame) -> pd.DataFrame:
    """The grid plus the predictor columns only random terms use (at their means or first levels)."""
    out = grid.copy()
    for c in spec.columns:
        if c.name in out.columns:
            continue
        if c.categorical:
            out[c.name] = _levels(spec, frame, c.name)[0]
        else:
            out[c.name] = float(pd.to_numeric(frame[c.name]).mean())
    for c in spec.columns:
        if c.categorical:
            out[c.name] = pd.Categorical(out[c.name], categories=list(c.levels))
    return out


def _estimable(spec: ModelSpec, frame: pd.DataFrame, full: pd.DataFrame) -> np.ndarray:
    """Rows of the full (undropped) design orthogonal to the fitted design's null space."""
    if not spec.dropped_fixed:
        return np.ones(len(full), dtype=bool)
    Xf = np.asarray(model_matrix(spec.fixed_spec, frame, spec.formula).to_numpy(dtype=float))
    Xg = np.asarray(model_matrix(spec.fixed_spec, full, spec.formula).to_numpy(dtype=float))
    _, s, Vt = np.linalg.svd(Xf, full_matrices=True)
    rank = int(np.sum(s > 1e-7 * s[0]))
    null = Vt[rank:]
    if null.shape[0] == 0:
        return np.ones(len(full), dtype=bool)
    scale = np.maximum(np.abs(Xg).max(axis=1), 1.0)
    return np.asarray(np.abs(Xg @ null.T).max(axis=1) < 1e-6 * scale)


def _cell_counts(frame: pd.DataFrame, grid: pd.DataFrame, factors: list[str]) -> np.ndarray:
    if not factors:
        return np.full(len(grid), float(len(frame)))
    keys = frame[factors].astype(str).agg("\x1f".join, axis=1).value_counts()
    cells = grid[factors].astype(str).agg("\x1f".join, axis=1)
    return cells.map(keys).fillna(0.0).to_numpy(dtype=float)


def parse_specs(specs: str | Sequence[str], by: str | Sequence[str] | None) -> tuple[list[str], list[str]]:
    """``"recipe"``, ``["recipe", "temp"]``, ``"~ recipe | temperature"`` or ``"recipe*temp"``.

    Examples
    --------
    >>> parse_specs("~ recipe | temperature", None)
    (['recipe'], ['temperature'])
    """
    by_list = [] if by is None else ([by] if isinstance(by, str) else list(by))
    if isinstance(specs, str):
        text = specs.strip().lstrip("~")
        if "|" in text:
            text, tail = text.split("|", 1)
            by_list = by_list + [v for v in _split_vars(tail) if v not in by_list]
        spec_list = _split_vars(text)
    else:
        spec_list = list(specs)
    if not spec_list:
        raise ModelError("specs must name at least one factor of the fixed part, e.g. specs='recipe'")
    return spec_list, by_list


def _split_vars(text: str) -> list[str]:
    parts = [p.strip() for p in text.replace("*", "+").replace(":", "+").split("+")]
    return [p for p in parts if p and p != "1"]


@dataclass(frozen=True)
class Emmeans:
    """Estimated marginal means: ``table`` and what :meth:`contrast` needs.

    ``table`` has the specs and by columns, then ``emmean`` (link scale) or ``response``,
    ``SE``, ``df``, ``lower.CL``, ``upper.CL``. ``K`` holds each mean's linear function of
    beta (link scale).
    """

    table: pd.DataFrame
    K: np.ndarray
    specs: tuple[str, ...]
    by: tuple[str, ...]
    beta: np.ndarray = field(repr=False)
    V: np.ndarray = field(repr=False)
    df_function: DfFunction = field(repr=False)
    link: Any = field(repr=False)
    scale: str = "link"
    level: float = 0.95
    method: str = ""

    def contrast(self, method: Any = "pairwise", adjust: str | None = None) -> pd.DataFrame:
        """Contrasts of the means within each ``by`` group (emmeans's ``contrast``).

        ``method``: ``"pairwise"`` (first minus second, every pair), ``"revpairwise"``, or
        custom weights: a dict ``{name: weights}`` or a matrix with one row per contrast
        over the means of a group. ``adjust``: ``"tukey"`` (pairwise default), ``"holm"``,
        ``"bonferroni"`` or ``"none"`` (custom default). On the response scale of a log
        or logit link the contrasts are ratios or odds ratios, tested on the link scale.

        Examples
        --------
        >>> import multilevel
        >>> m = multilevel.fit("angle ~ recipe * temperature + (1 | recipe:replicate)",
        ...                    multilevel.load_dataset("cake"))
        >>> m.emmeans("recipe").contrast("pairwise")["contrast"].tolist()
        ['A - B', 'A - C', 'B - C']
        """
        from .emmeans_contrast import contrast_table

        return contrast_table(self, method, adjust)


def _weights(rg: ReferenceGrid, rows: np.ndarray, others: list[str], weights: str) -> np.ndarray:
    """Averaging weights over the grid rows of one mean."""
    if weights == "equal" or not others:
        return np.full(rows.size, 1.0 / rows.size)
    key = rg.grid[others].astype(str).agg("\x1f".join, axis=1)
    per_other = pd.Series(rg.counts).groupby(key.to_numpy()).sum()
    w = key.iloc[rows].map(per_other).to_numpy(dtype=float)
    if w.sum() == 0:
        return np.full(rows.size, 1.0 / rows.size)
    return w / w.sum()


def emm_table(
    rg: ReferenceGrid, groups: list[str], weights: str
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """The means' keys, their linear functions K and whether each is estimable."""
    others = [f for f in rg.factors if f not in groups]
    key_frame = rg.grid[groups]
    codes = key_frame.astype(str).agg("\x1f".join, axis=1) if groups else pd.Series(["all"] * len(rg.grid))
    order = list(dict.fromkeys(codes))
    K = np.empty((len(order), rg.X.shape[1]))
    ok = np.empty(len(order), dtype=bool)
    keys = []
    for i, code in enumerate(order):
        rows = np.flatnonzero(codes.to_numpy() == code)
        w = _weights(rg, rows, others, weights)
        K[i] = w @ rg.X[rows]
        ok[i] = bool(np.all(rg.estimable[rows][w > 0]))
        keys.append(key_frame.iloc[rows[0]].to_dict() if groups else {})
    return pd.DataFrame(keys, columns=groups), K, ok


def emmeans(
    spec: ModelSpec,
    frame: pd.DataFrame,
    beta: np.ndarray,
    V: np.ndarray,
    df_function: DfFunction,
    specs: str | Sequence[str],
    *,
    by: str | Sequence[str] | None = None,
    at: dict[str, Any] | None = None,
    weights: str = "equal",
    link: Any = None,
    type: str = "link",
    level: float = 0.95,
    method: str = "",
) -> Emmeans:
    """Estimated marginal means of a fit given its beta, covariance and df function.

    Fits call this through their ``emmeans`` method (``LmmFit.emmeans``,
    ``GlmmFit.emmeans``), which supply ``beta``, ``V`` and ``df_function``.

    Examples
    --------
    >>> import multilevel
    >>> m = multilevel.fit("Weight ~ Time + Cu + (1 | Pig)", multilevel.load_dataset("dietox"))
    >>> e = m.emmeans("Cu", ddf="kenward-roger")
    >>> e.table.columns.tolist()
    ['Cu', 'emmean', 'SE', 'df', 'lower.CL', 'upper.CL']
    """
    if weights not in WEIGHTS:
        raise ModelError(f"weights must be one of {WEIGHTS}, got {weights!r}")
    if type not in ("link", "response"):
        raise ModelError(f"type must be 'link' or 'response', got {type!r}")
    if not 0 < level < 1:
        raise ModelError(f"level must be between 0 and 1, got {level!r}")
    spec_list, by_list = parse_specs(specs, by)
    rg = reference_grid(spec, frame, at)
    known = list(rg.grid.columns)
    for v in spec_list + by_list:
        if v not in known:
            raise ModelError(_not_a_variable(v, known, "specs / by"))
    keys, K, ok = emm_table(rg, [*spec_list, *[b for b in by_list if b not in spec_list]], weights)
    table = _estimates(keys, K, ok, beta, V, df_function, link, type, level)
    return Emmeans(
        table, K, tuple(spec_list), tuple(by_list), beta, V, df_function, link, type, level, method
    )


def _estimates(keys, K, ok, beta, V, df_function, link, type, level) -> pd.DataFrame:
    est = K @ beta
    se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", K, V, K), 0.0))
    df = np.asarray(df_function(K), dtype=float)
    est, se, df = np.where(ok, est, np.nan), np.where(ok, se, np.nan), np.where(ok, df, np.nan)
    crit = np.array([t_quantile(1 - (1 - level) / 2, d) for d in df])
    lo, hi = est - crit * se, est + crit * se
    out = keys.copy()
    if type == "response" and link is not None and link.name != "identity":
        mu = link.inverse(est)
        se = se * np.abs(link.mu_eta(est))
        lo, hi = np.sort(np.stack([link.inverse(lo), link.inverse(hi)]), axis=0)
        out["response"] = mu
    else:
        out["emmean"] = est
    out["SE"], out["df"], out["lower.CL"], out["upper.CL"] = se, df, lo, hi
    return out
