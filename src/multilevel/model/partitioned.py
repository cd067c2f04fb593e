"""Rows that arrive in partitions: a first pass's survey, the recipe, cross-products per partition.

A model whose rows never sit in one process (a Dask DataFrame, Parquet files on a
cluster) is materialized in two passes over the partitions:

    survey_partition (rows, missing values, levels, a few complete rows) --merge_surveys-->
    recipe_from_survey (the frozen spec, identical for every partition)
    partition_crossprods (per partition) --CrossProducts.__add__--> drop_dependent_columns

The recipe is small (the spec and the columns to read), so it is what travels to the
workers; only cross-products come back. Nothing here imports Dask: these functions
take and return pandas frames and records, so any scheduler can run them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import DataError, FormulaError, MissingDataWarning, ModelError, RankDeficiencyWarning, warn
from ..family import get_family
from ..formula import ParsedFormula, parse_formula
from ..linalg.crossprod import CrossProducts, add_into, compute_crossprods
from .columns import is_categorical, level_name, predictor_names, record_columns
from .data import NA_ACTIONS, check_columns, missing_rows, strings_as_objects
from .design import (
    RANK_TOL,
    Design,
    GroupingData,
    _check_identifiable,
    _check_terms,
    _matrices,
    _prior_weights,
    used_columns,
)
from .groupings import blocks_for_levels, factor_codes, term_values
from .matrices import expression, model_matrix
from .spec import ModelSpec

#: formulaic transforms whose state (means, SDs, polynomial or spline bases) comes from
#: the rows they see: each partition would get its own, so they are refused
STATEFUL = ("scale", "center", "standardize", "poly", "bs", "cr", "cc", "te", "hashed")
_STATEFUL_CALL = re.compile(r"\b(" + "|".join(STATEFUL) + r")\s*\(")
HEAD_ROWS = 500  # complete rows the survey keeps to build the formulaic specs on


@dataclass(frozen=True)
class Survey:
    """What the first pass learns: rows, missing values, observed levels, a few complete rows.

    ``levels`` maps each categorical column, and each grouping factor (a tuple of
    columns for ``a:b``), to the distinct values its complete rows hold.
    """

    rows: int
    incomplete: int
    missing_by_column: dict[str, int]
    levels: dict[tuple[str, ...], pd.DataFrame]
    head: pd.DataFrame
    partition_rows: dict[int, int] = field(default_factory=dict)  # rows of each partition


@dataclass(frozen=True)
class Recipe:
    """What every partition needs to give the same columns: the spec, what to read."""

    spec: ModelSpec
    used: tuple[str, ...]  # columns whose missing values drop a row
    weights: str | None
    offset: str | None
    family: Any = None  # the Family (None: Gaussian, the linear mixed model)
    keep: tuple[int, ...] | None = None  # the fixed-effect columns kept (None: all)

    @property
    def n_levels(self) -> list[int]:
        return [g.n_levels for g in self.spec.groupings]


def survey_plan(
    formula: str, meta: pd.DataFrame, weights: Any, offset: Any
) -> tuple[ParsedFormula, list[str], list[tuple[str, ...]]]:
    """The parsed formula, the columns the model reads and the column sets whose levels
    the survey collects (categorical predictors and the grouping factors), from the
    table's columns and dtypes alone (``meta``: an empty frame)."""
    parsed = parse_formula(formula)
    for arg, name in ((weights, "weights"), (offset, "offset")):
        if arg is not None and not isinstance(arg, str):
            raise ModelError(
                f"{name}= must be a column name when the data are partitioned (Dask or Parquet): "
                f"an array cannot be split with the rows. Add it as a column and pass {name}='column'"
            )
    found = _STATEFUL_CALL.search(parsed.formula)
    if found:
        raise FormulaError(
            f"{found.group(1)}() learns its state from the rows it sees, so each partition would be "
            "transformed differently; compute the column before fitting (ddf.assign(...)) and use it",
            parsed.formula,
            found.span(),
        )
    _check_terms(parsed, None)
    used = used_columns(parsed, meta, weights, offset)
    meta = strings_as_objects(meta, used)
    preds = predictor_names(parsed, set(meta.columns))
    sets: list[tuple[str, ...]] = [(c,) for c in preds if is_categorical(meta[c])]
    sets += list(dict.fromkeys(t.factors for t in parsed.random))
    return parsed, used, list(dict.fromkeys(sets))


def survey_partition(
    df: pd.DataFrame, used: list[str], sets: list[tuple[str, ...]], *, index: int = 0
) -> Survey:
    """The first pass over partition number ``index``."""
    df = strings_as_objects(df.reset_index(drop=True), used)
    mask, per_col = missing_rows(df, used)
    sub = df if mask.all() else df.loc[mask]
    levels = {s: sub[list(s)].drop_duplicates().reset_index(drop=True) for s in sets}
    head = sub[used].head(HEAD_ROWS).reset_index(drop=True)
    return Survey(len(df), int((~mask).sum()), per_col, levels, head, {index: len(df)})


def merge_surveys(a: Survey, b: Survey) -> Survey:
    """Two partitions' surveys as one (the reduction of the first pass)."""
    per_col = dict(a.missing_by_column)
    for c, k in b.missing_by_column.items():
        per_col[c] = per_col.get(c, 0) + k
    levels = {
        s: pd.concat([a.levels[s], b.levels[s]], ignore_index=True).drop_duplicates().reset_index(drop=True)
        for s in a.levels
    }
    head = a.head if len(a.head) >= HEAD_ROWS else _concat_heads(a.head, b.head)
    return Survey(
        a.rows + b.rows,
        a.incomplete + b.incomplete,
        per_col,
        levels,
        head.head(HEAD_ROWS),
        {**a.partition_rows, **b.partition_rows},
    )


#: what Dask puts in the categories of a categorical whose levels it does not know
UNKNOWN = "__UNKNOWN_CATEGORIES__"


def _concat_heads(a: pd.DataFrame, b: pd.DataFrame) -> pd.DataFrame:
    """Two partitions' sample rows as one table, a categorical column staying categorical
    (pandas turns categoricals with different categories into plain strings). Equal
    categories keep their order; different ones (Dask's unknown categories) become their
    sorted union, the order an in-memory fit of the strings would give, whatever order
    the partitions finish in."""
    a, b = a.copy(), b.copy()
    for c in a.columns:
        ca, cb = isinstance(a[c].dtype, pd.CategoricalDtype), isinstance(b[c].dtype, pd.CategoricalDtype)
        if not (ca or cb) or (ca and cb and a[c].cat.categories.equals(b[c].cat.categories)):
            continue
        va = a[c].cat.categories if ca else a[c].dropna()
        vb = b[c].cat.categories if cb else b[c].dropna()
        values = [*va, *vb]
        cats = sorted({v for v in values if v != UNKNOWN}, key=str)
        a[c] = pd.Categorical(a[c].astype(object), categories=cats)
        b[c] = pd.Categorical(b[c].astype(object), categories=cats)
    return pd.concat([a, b], ignore_index=True)


def _report_missing(survey: Survey, na_action: str) -> None:
    """The in-memory fit's warning or error about incomplete rows, counted over all partitions."""
    if na_action not in NA_ACTIONS:
        raise DataError(f"na_action must be one of {NA_ACTIONS}, got {na_action!r}")
    if not survey.incomplete:
        return
    detail = ", ".join(f"{c} ({k})" for c, k in survey.missing_by_column.items())
    if na_action == "raise":
        raise DataError(
            f"{survey.incomplete} of {survey.rows} rows have missing values in columns {detail}; "
            "remove or impute them, or pass na_action='omit' to drop them"
        )
    warn(
        f"dropped {survey.incomplete} of {survey.rows} rows with missing values in columns {detail}",
        MissingDataWarning,
    )


def _prototype(survey: Survey, sets: list[tuple[str, ...]]) -> pd.DataFrame:
    """The survey's complete rows with every categorical predictor holding all its levels
    as categories, so that formulaic's specs code every partition alike."""
    proto = survey.head.copy()
    for s in sets:
        c = s[0]
        if isinstance(proto[c].dtype, pd.CategoricalDtype) and UNKNOWN in proto[c].cat.categories:
            proto[c] = proto[c].cat.remove_categories([UNKNOWN])  # Dask's placeholder, not a level
        # strings of any dtype (object, or pandas' str when partitions' categoricals with
        # different categories were concatenated) are categorical; numbers stay numbers
        if len(s) > 1 or isinstance(proto[c].dtype, pd.CategoricalDtype):
            continue
        if not (is_categorical(proto[c]) or pd.api.types.is_string_dtype(proto[c])):
            continue
        cats = pd.Categorical(survey.levels[s][c].to_numpy()).categories  # sorted, as formulaic does
        proto[c] = pd.Categorical(proto[c].to_numpy(), categories=cats)
    return proto


def recipe_from_survey(
    parsed: ParsedFormula,
    survey: Survey,
    sets: list[tuple[str, ...]],
    used: list[str],
    *,
    weights: str | None = None,
    offset: str | None = None,
    na_action: str = "omit",
    data_name: str = "data",
    family: Any = None,
) -> Recipe:
    """The frozen spec of a partitioned table (every fixed-effect column kept: the rank
    check waits for the summed cross-products, :func:`drop_dependent_columns`);
    ``family``: a GLMM's Family (None: Gaussian)."""
    _report_missing(survey, na_action)
    n = survey.rows - survey.incomplete
    if n == 0:
        raise DataError("no complete rows left after removing missing values")
    proto = _prototype(survey, sets)
    _, fixed_mm, re_mats, mm_specs = _matrices(parsed, proto, proto)
    levels = {t.group: factor_codes(survey.levels[t.factors], t.factors)[1] for t in parsed.random}
    groupings, theta_map, theta_names = blocks_for_levels(parsed, proto, re_mats, levels)
    fam = get_family("gaussian") if family is None else family
    _check_identifiable(groupings, n, fam, parsed.se is not None)
    columns = record_columns(proto, predictor_names(parsed, set(proto.columns)), mm_specs)
    columns = tuple(
        replace(c, observed=tuple(level_name(v) for v in survey.levels[(c.name,)][c.name].tolist()))
        if c.categorical and (c.name,) in survey.levels
        else c
        for c in columns
    )
    spec = ModelSpec(
        parsed=parsed,
        family=fam.name,
        response=parsed.response or f"cbind({parsed.cbind[0]}, {parsed.cbind[1]})",  # type: ignore[index]
        fixed_spec=fixed_mm.model_spec,
        fixed_names=tuple(str(c) for c in fixed_mm.columns),
        dropped_fixed=(),
        groupings=groupings,
        theta_map=theta_map,
        theta_names=theta_names,
        nobs=n,
        n_missing=survey.incomplete,
        data_name=data_name,
        missing_by_column=dict(survey.missing_by_column),
        weights=weights,
        offset=offset,
        columns=columns,
    )
    return Recipe(spec=spec, used=tuple(used), weights=weights, offset=offset, family=family)


def level_codes(df: pd.DataFrame, factors: tuple[str, ...], levels: tuple[str, ...]) -> np.ndarray:
    """Rows' codes among known ``levels`` of the (interaction of the) ``factors``, by
    distinct values rather than row by row; -1 for a level not among them."""
    lookup = {lev: i for i, lev in enumerate(levels)}
    if len(factors) == 1:
        codes, uniques = pd.factorize(df[factors[0]])
        lut = np.array([lookup.get(level_name(v), -1) for v in uniques.tolist()], dtype=np.int64)
        return lut[codes]
    combined = np.zeros(len(df), dtype=np.int64)
    names: list[list[str]] = []
    for f in factors:
        codes, uniques = pd.factorize(df[f])
        combined = combined * max(len(uniques), 1) + codes
        names.append([level_name(v) for v in uniques.tolist()])
    used, inverse = np.unique(combined, return_inverse=True)
    keys = []
    for code in used.tolist():
        parts = []
        for nm in reversed(names):
            code, r = divmod(int(code), len(nm))
            parts.append(nm[r])
        keys.append(":".join(reversed(parts)))
    return np.array([lookup.get(k, -1) for k in keys], dtype=np.int64)[inverse.ravel()]


def partition_design(recipe: Recipe, df: pd.DataFrame) -> Design | None:
    """One partition's complete rows as a design with the recipe's columns (None: no rows)."""
    spec = recipe.spec
    df = strings_as_objects(df.reset_index(drop=True), recipe.used)
    check_columns(df, recipe.used, "the model")
    mask, _ = missing_rows(df, recipe.used)
    if not mask.any():
        return None
    sub = df if mask.all() else df.loc[mask].reset_index(drop=True)
    from .columns import conform_columns

    sub = conform_columns(sub, spec.columns)
    m = model_matrix(spec.fixed_spec, sub, spec.formula)
    X = np.asarray(m.to_numpy(dtype=float))
    if recipe.keep is not None:
        X = np.ascontiguousarray(X[:, list(recipe.keep)])
    fam, trials = recipe.family, None
    if fam is not None and fam.trials_response:
        from .response import binomial_response

        def evaluate(expr: str) -> np.ndarray:
            return expression(expr, sub, spec.formula)

        y, trials = binomial_response(spec.parsed.response, spec.parsed.cbind, sub, evaluate)
    else:
        y = expression(spec.response, sub, spec.formula)
    groups = []
    for g in spec.groupings:
        vals = np.column_stack([term_values(t, sub, spec.formula) for t in g.terms])
        groups.append(GroupingData(codes=level_codes(sub, g.factors, g.levels), values=vals))
    w = None if recipe.weights is None else sub[recipe.weights].to_numpy(dtype=float)
    if w is not None and np.any(w < 0):
        raise DataError(f"weights must be non-negative; found negative values in {recipe.weights!r}")
    off = None if recipe.offset is None else sub[recipe.offset].to_numpy(dtype=float)
    for expr in spec.parsed.offsets:
        o = expression(expr, sub, spec.formula)
        off = o if off is None else off + o
    se = None if spec.parsed.se is None else expression(spec.parsed.se, sub, spec.formula)
    if fam is not None:  # a GLMM: the response checked against the family, trials in the weights
        w = _prior_weights(spec.parsed, fam, np.asarray(y, dtype=float), trials, w)
    return Design(y, X, tuple(groups), w, off, se)


def partition_crossprods(recipe: Recipe, df: pd.DataFrame) -> CrossProducts | None:
    """The cross-products of one partition's complete rows (None: no complete rows)."""
    d = partition_design(recipe, df)
    return None if d is None else compute_crossprods(d, recipe.n_levels)


def add_crossprods(a: CrossProducts | None, b: CrossProducts | None) -> CrossProducts | None:
    """The reduction step: partitions without complete rows contribute nothing. ``b`` is
    added into ``a``'s dense arrays (:func:`~multilevel.linalg.crossprod.add_into`):
    each partial sum of the pass is combined once and read by nothing else."""
    if a is None:
        return b
    return a if b is None else add_into(a, b)


def independent_columns(XtX: np.ndarray) -> list[int]:
    """The in-memory fit's rank check on ``X'X`` instead of the rows: the columns that are
    not a combination of earlier ones (relative residual norm under ``RANK_TOL``, the
    tolerance of the in-memory QR)."""
    keep: list[int] = []
    for j in range(XtX.shape[0]):
        d = XtX[j, j]
        if keep and d > 0:
            v = XtX[keep, j]
            d = d - v @ np.linalg.solve(XtX[np.ix_(keep, keep)], v)
        if XtX[j, j] > 0 and d > (RANK_TOL**2) * XtX[j, j]:
            keep.append(j)
    return keep


def drop_fixed(spec: ModelSpec, keep: list[int]) -> ModelSpec:
    """The spec with only the fixed-effect columns ``keep``, and the in-memory fit's warning."""
    names = spec.fixed_names
    dropped = [names[j] for j in range(len(names)) if j not in keep]
    warn(
        f"fixed-effect design is rank deficient: dropping {len(dropped)} column"
        f"{'s' if len(dropped) > 1 else ''} {', '.join(dropped)}",
        RankDeficiencyWarning,
    )
    return replace(spec, fixed_names=tuple(names[j] for j in keep), dropped_fixed=tuple(dropped))


def drop_dependent_columns(spec: ModelSpec, cp: CrossProducts) -> tuple[ModelSpec, CrossProducts]:
    """The columns of :func:`independent_columns` kept in the spec and the cross-products."""
    lay = cp.layout
    mz, p = lay.mz, lay.p
    keep = independent_columns(cp.ARR[mz : mz + p, mz : mz + p])
    if len(keep) == p:
        return spec, cp
    idx = np.r_[np.arange(mz), mz + np.array(keep, dtype=int), mz + p]
    A1R = cp.A1R[:, idx]
    cp2 = replace(
        cp,
        layout=replace(lay, p=len(keep)),
        A1R=sp.csr_matrix(A1R) if sp.issparse(A1R) else np.ascontiguousarray(A1R),
        ARR=np.ascontiguousarray(cp.ARR[np.ix_(idx, idx)]),
    )
    return drop_fixed(spec, keep), cp2


class RemoteRows:
    """Where a fit's design would be when its rows stayed on a cluster: the size of the
    data, and a clear error for anything that needs the rows themselves."""

    remote = True
    frame = None

    def __init__(self, n: int, n_input: int) -> None:
        self._n, self.n_input = n, n_input

    @property
    def n(self) -> int:
        return self._n

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise ModelError(
            f"design.{name} is not available: this model was fitted from partitioned data (Dask or "
            "Parquet) and its rows live on the cluster; the fit keeps only their cross-products. "
            "Residuals and fitted values are per row: compute them per partition with "
            "fit.predict(partition) (ddf.map_partitions), or fit in memory"
        )
