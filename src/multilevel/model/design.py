"""The one materializer: (formula, data) -> a frozen spec and the arrays of the model.

:func:`build_model` serves every model: mixed models (random terms required) and,
with ``cluster=``, marginal models (GEE: no random terms, each row's cluster code).
It reads pandas, polars, Arrow or a dict of arrays; drops incomplete rows (counted,
reported, ``na_action``); codes the response (binomial forms); builds the fixed
design (rank-deficient columns dropped with a warning), the grouping blocks or
clusters, prior weights (times binomial trials), the offset (``offset()`` terms
plus ``offset=``) and known SEs; and checks that the model is identifiable. The
spec records what new data needs; :func:`multilevel.model.newdata.design_for`
rebuilds the arrays of new data from it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError, ModelError, RankDeficiencyWarning, warn
from ..family import Dispersion, Family, get_family
from ..formula import ParsedFormula, parse_formula
from .columns import names_in, predictor_names, record_columns
from .data import (
    Columns,
    check_columns,
    check_finite,
    column_names,
    complete_frame,
    row_vector,
    to_pandas,
)
from .fast_design import fast_matrices
from .groupings import block_values, factor_codes, grouping_blocks, ones_view
from .matrices import expression, model_matrix
from .response import check_trials
from .spec import ARRAY_ARG, GroupingSpec, ModelSpec, ThetaMap

RANK_TOL = 1e-7


@dataclass(frozen=True)
class GroupingData:
    """Rows' level codes and the term columns of one grouping block."""

    codes: np.ndarray  # (n,) int32 (int64 past 2^31 levels), -1 for a level not in the spec (new data)
    values: np.ndarray  # (n, q) float64; an intercept-only block's is a read-only broadcast of 1


@dataclass(frozen=True)
class Design:
    """The numbers of a model: one row per observation used.

    ``rows`` gives each row's position in the input table and ``n_input`` that
    table's length (None: every row, in order); :meth:`to_input_rows` puts per-row
    results back in the input's rows.
    """

    y: np.ndarray
    X: np.ndarray
    groups: tuple[GroupingData, ...]
    weights: np.ndarray | None = None
    offset: np.ndarray | None = None
    se: np.ndarray | None = None
    clusters: np.ndarray | None = None  # (n,) cluster codes of a marginal model
    rows: np.ndarray | None = None
    n_input: int | None = None
    # the rows as the fit read them and the names of their predictor columns (reference
    # grids, type III hypotheses read them as ``frame``); None for new data
    source: pd.DataFrame | None = field(default=None, repr=False, compare=False)
    predictors: tuple[str, ...] = ()

    @cached_property
    def frame(self) -> pd.DataFrame | None:
        """The predictor columns of the fitted rows, selected when first asked for (a copy
        on every fit would cost more than a small model's optimization steps)."""
        return None if self.source is None else self.source[list(self.predictors)]

    @property
    def n(self) -> int:
        return int(self.y.shape[0])

    @property
    def residual_weights(self) -> np.ndarray | None:
        """Prior weights divided by known residual variances (``se(s)``), or None."""
        if self.se is None:
            return self.weights
        inv = 1.0 / self.se**2
        return inv if self.weights is None else self.weights * inv

    def to_input_rows(self, values: np.ndarray) -> np.ndarray:
        """``values`` (one per row of the design) at their rows of the input table; NaN
        for the input rows the design left out (missing values)."""
        if self.rows is None or self.n_input is None or self.n_input == self.n:
            return values
        out = np.full(self.n_input, np.nan)
        out[self.rows] = values
        return out


def z_times_b(design: Design, b: list[np.ndarray]) -> np.ndarray:
    """``Z b`` for a design: each row's term values times its level's effects.

    Rows whose level is unknown (code -1, new data) get no group contribution.
    """
    out = np.zeros(design.n)
    for g, bk in zip(design.groups, b):
        if g.codes.size and g.codes.min() >= 0:  # the fitted rows: no masking on the PIRLS path
            out += np.einsum("ij,ij->i", g.values, bk[g.codes])
            continue
        ok = g.codes >= 0
        out[ok] += np.einsum("ij,ij->i", g.values[ok], bk[g.codes[ok]])
    return out


def _drop_rank_deficient(
    X: np.ndarray, names: list[str], peak: np.ndarray | None = None
) -> tuple[np.ndarray, list[str], list[str]]:
    """The columns kept and their names, and the names dropped (``peak``: each column's
    largest magnitude, if known)."""
    if X.shape[1] == 0:
        return X, names, []
    if peak is None:
        peak = np.abs(X).max(axis=0)
    # Unpivoted QR keeps the column order, so a column that is a combination of
    # earlier ones is the one dropped (as R's dqrdc2, used by lme4). The columns are
    # scaled to unit length first: rank is a property of directions, and a column of
    # values near 1e300 or 1e-300 would otherwise over- or underflow in the QR.
    Xs = X / np.where(peak > 0, peak, 1.0)
    norms = np.sqrt(np.einsum("ij,ij->j", Xs, Xs))
    Xs /= np.where(norms > 0, norms, 1.0)
    R = np.linalg.qr(Xs, mode="r")  # LAPACK's dgeqrf
    d = np.zeros(X.shape[1])  # columns past the number of rows depend on the earlier ones
    d[: min(X.shape)] = np.abs(np.diagonal(R))
    good = (d > RANK_TOL) & (norms > 0)
    if good.all():
        return X, names, []
    keep = np.flatnonzero(good)
    dropped = [names[i] for i in range(len(names)) if not good[i]]
    if dropped:
        warn(
            f"fixed-effect design is rank deficient: dropping {len(dropped)} column"
            f"{'s' if len(dropped) > 1 else ''} {', '.join(dropped)}",
            RankDeficiencyWarning,
        )
    return X[:, keep], [names[i] for i in keep], dropped


def _fixed_design(fixed_mm: Any) -> tuple[np.ndarray, list[str], list[str]]:
    """The fixed-effect columns kept (finite, of full rank, of a magnitude that squares),
    their names and the names of those dropped."""
    X_full = np.asarray(fixed_mm.to_numpy(dtype=float))
    peak = np.abs(X_full).max(axis=0) if X_full.size else np.zeros(X_full.shape[1])
    if not np.isfinite(peak).all():  # the largest magnitude is NaN or inf exactly where a value is
        check_finite("the fixed-effect design", X_full)
    X, names, dropped = _drop_rank_deficient(X_full, list(fixed_mm.columns), peak)
    _check_column_scale(names, np.abs(X).max(axis=0) if dropped and X.size else peak[: len(names)])
    if names == ["Intercept"]:
        X = ones_view(X.shape)
    return X, names, dropped


def _prior_weights(
    parsed: ParsedFormula, fam: Family, y: np.ndarray, trials: np.ndarray | None, w: np.ndarray | None
) -> np.ndarray | None:
    """Prior weights times binomial trials, once the response is checked against the
    family's support: here, where every entry point (fit, sample, gee) passes."""
    if fam.trials_response:
        check_trials(parsed.response, y, trials, w)
    if trials is not None:
        w = trials if w is None else w * trials
    fam.check(y, w if w is not None else np.ones(len(y)))
    return w


def _check_column_scale(names: list[str], peak: np.ndarray) -> None:
    """Refuse a fixed-effect column whose magnitude cross-products cannot hold (as the
    response's): its squares would over- or underflow in double precision (``peak``:
    each column's largest magnitude)."""
    bad = [(n, p) for n, p in zip(names, peak) if p > 0 and not (1e-150 < p < 1e150)]
    if bad:
        name, p = bad[0]
        raise DataError(
            f"the fixed-effect column {name!r} reaches {p:.3g} in magnitude: too small or too large to "
            "square in double precision; rescale it (e.g. multiply by a power of 10; its coefficient "
            "is divided by the same factor)"
        )


def _check_terms(parsed: ParsedFormula, cluster: str | None, random_required: bool = True) -> None:
    span = (0, len(parsed.formula))
    if cluster is None and not parsed.random and random_required:
        raise FormulaError(
            "formula contains no random-effects term such as (1 | group); this is not a mixed "
            "model. Add a grouping term, or use an ordinary regression package.",
            parsed.formula,
            span,
        )
    if cluster is not None and parsed.random:
        raise FormulaError(
            "GEE formulas have no random-effects terms; give the clusters with groups=",
            parsed.formula,
            parsed.random[0].span,
        )
    if cluster is not None and parsed.se is not None:
        raise FormulaError("se() (known residual SEs) is for mixed models, not GEE", parsed.formula, span)


def used_columns(
    parsed: ParsedFormula,
    df: pd.DataFrame,
    weights: Any = None,
    offset: Any = None,
    names: frozenset[str] | None = None,
) -> list[str]:
    """Every column the model reads, checked to exist; missing values in them drop a row
    (``names``: the table's column names as strings, if known)."""
    cols = column_names(df) if names is None else names
    exprs = [parsed.response or "", parsed.fixed, *parsed.offsets, parsed.se or "", *(parsed.cbind or ())]
    used = [n for e in exprs for n in names_in(e, cols)]
    for t in parsed.random:
        used += names_in(t.expr, cols)
    check_columns(df, used, "the formula")  # they exist; a name held twice is refused
    group_cols = [f for t in parsed.random for f in t.factors]
    check_columns(df, group_cols, "a random-effects grouping")
    extra = [a for a in (weights, offset) if isinstance(a, str)]
    for name, arg in (("weights", weights), ("offset", offset)):
        if isinstance(arg, str):
            check_columns(df, [arg], f"{name}=")
    return list(dict.fromkeys(used + group_cols + extra))


def _check_cluster(df: pd.DataFrame, cluster: str) -> None:
    check_columns(df, [cluster], "groups=")
    n_na = int(df[cluster].isna().sum())
    if n_na:
        raise DataError(
            f"the cluster column {cluster!r} has {n_na} missing values; every row needs a cluster: "
            "fill them in or drop those rows first"
        )


def _matrices(
    parsed: ParsedFormula, sub: pd.DataFrame, df: pd.DataFrame, cols: Columns | None = None
) -> tuple[Any, Any, dict[str, Any], list[Any]]:
    """formulaic's response, fixed-effect and random-term matrices, built in one pass
    (by NumPy for plain formulas), and what names the contrasts of coded columns."""
    re_exprs = list(dict.fromkeys(t.expr for t in parsed.random if t.expr != "1"))
    lhs_expr = parsed.response if parsed.response is not None else parsed.cbind[0]  # type: ignore[index]
    joined = f"{lhs_expr} ~ {parsed.fixed}" + "".join(f" | {e}" for e in re_exprs)
    fast = fast_matrices(parsed, sub, joined, re_exprs, cols)
    if fast is not None:
        return fast[0], fast[1], fast[2], [fast[3]]
    try:
        mm = model_matrix(joined, sub, parsed.formula)
    except FormulaError:
        _raise_missing(parsed, df)
        raise
    rhs_parts = mm.rhs if re_exprs else (mm.rhs,)
    return mm.lhs, rhs_parts[0], dict(zip(re_exprs, rhs_parts[1:])), [m.model_spec for m in rhs_parts]


def _response(parsed: ParsedFormula, sub: pd.DataFrame, lhs: Any, fam: Family) -> tuple[np.ndarray, Any]:
    """The response as numbers (binomial: proportions) and the binomial trials (or None)."""
    if parsed.response is None and not fam.trials_response:
        raise FormulaError(
            "cbind() responses need a binomial family: pass family='binomial'",
            parsed.formula,
            (0, parsed.formula.index("~")),
        )
    trials = None
    if fam.trials_response:
        from .response import binomial_response

        def evaluate(expr: str) -> np.ndarray:
            return expression(expr, sub, parsed.formula)

        y, trials = binomial_response(parsed.response, parsed.cbind, sub, evaluate)
    else:
        if lhs.shape[1] != 1:
            raise DataError(
                f"the response {parsed.response!r} expands to {lhs.shape[1]} columns; a {fam.name} "
                "model needs one numeric response column"
            )
        y = np.asarray(lhs.to_numpy(dtype=float)).ravel()
    lo, hi = float(y.min()), float(y.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):  # min and max are finite only if every value is
        check_finite(f"response {parsed.response!r}", y)
    if hi == lo:
        raise DataError(
            f"the response {parsed.response or parsed.cbind} is constant ({y[0]:g}); there is nothing "
            "to model (for a binary response: every outcome is the same)"
        )
    spread = hi - lo
    if not (1e-150 < spread < 1e150) or not max(abs(lo), abs(hi)) < 1e150:
        # sums of squares of such values under- or overflow in double precision
        raise DataError(
            f"the response {parsed.response or parsed.cbind} spans {spread:.3g} (largest magnitude "
            f"{float(np.max(np.abs(y))):.3g}): too small or too large to square in double precision; "
            "rescale it (e.g. multiply by a power of 10)"
        )
    return y, trials


def _known_parts(
    parsed: ParsedFormula, sub: pd.DataFrame, df: pd.DataFrame, mask: np.ndarray, weights: Any, offset: Any
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Prior weights, the offset (``offset=`` plus ``offset()`` terms) and known SEs."""
    w = row_vector(weights, df, mask, "weights")
    if w is not None and np.any(w < 0):
        raise DataError("weights must be non-negative; found negative values")
    off = row_vector(offset, df, mask, "offset")
    for expr in parsed.offsets:
        o = expression(expr, sub, parsed.formula)
        check_finite(f"offset({expr})", o)
        off = o if off is None else off + o
    se = None
    if parsed.se is not None:
        se = expression(parsed.se, sub, parsed.formula)
        check_finite(f"se({parsed.se})", se)
        if np.any(se <= 0):
            raise DataError(f"se({parsed.se}) must be positive")
    return w, off, se


def _random_part(
    parsed: ParsedFormula,
    sub: pd.DataFrame,
    re_mats: dict[str, Any],
    cluster: str | None,
    cols: Columns | None = None,
) -> tuple[tuple[GroupingSpec, ...], ThetaMap, tuple[str, ...], tuple[GroupingData, ...]]:
    """The grouping blocks, theta layout and names, and the blocks' numbers (none for GEE)."""
    if cluster is not None:
        return (), ThetaMap(*(np.zeros(0, dtype=np.int64) for _ in range(3))), (), ()
    groupings, theta_map, theta_names, codes = grouping_blocks(parsed, sub, re_mats, cols)
    group_data = tuple(
        GroupingData(
            codes=codes[g.name],
            values=block_values(g.terms, sub, parsed.formula, re_mats),
        )
        for g in groupings
    )
    return groupings, theta_map, theta_names, group_data


def _cluster_codes(sub: pd.DataFrame, cluster: str | None) -> tuple[np.ndarray | None, GroupingSpec | None]:
    """A marginal model's cluster codes and levels (None, None for a mixed model)."""
    if cluster is None:
        return None, None
    codes, levels = factor_codes(sub, (cluster,))
    if len(levels) < 2:
        raise DataError(f"GEE needs at least 2 clusters; {cluster!r} has {len(levels)}")
    return codes, GroupingSpec(name=cluster, factors=(cluster,), levels=levels, terms=())


def _source(arg: Any) -> str | None:
    """What the spec records of a per-row argument: its column, ARRAY_ARG or None."""
    return arg if isinstance(arg, str) or arg is None else ARRAY_ARG


def build_model(
    formula: str | ParsedFormula,
    data: Any,
    *,
    family: Any = "gaussian",
    weights: Any = None,
    offset: Any = None,
    na_action: str = "omit",
    cluster: str | None = None,
    also_complete: Sequence[str] = (),
    random_required: bool = True,
) -> tuple[ModelSpec, Design]:
    """Parse ``formula`` and materialize it on ``data``.

    Parameters
    ----------
    weights, offset:
        Column names or arrays (one value per row of ``data``).
    na_action:
        ``"omit"`` drops incomplete rows with a warning that counts them, ``"raise"``
        refuses them.
    cluster:
        A marginal model (GEE): the column of the clusters. The formula then has no
        random terms and the design carries each row's cluster code.
    also_complete:
        More columns whose missing values drop a row (GEE's ``time=``).
    random_required:
        False accepts a formula without random terms (a nonlinear model's parameter).

    Examples
    --------
    >>> from multilevel.datasets import load_dataset
    >>> spec, design = build_model("Reaction ~ Days + (Days | Subject)", load_dataset("sleepstudy"))
    >>> spec.fixed_names, [g.name for g in spec.groupings], design.X.shape
    (('Intercept', 'Days'), ['Subject'], (180, 2))
    """
    parsed = formula if isinstance(formula, ParsedFormula) else parse_formula(formula)
    _check_terms(parsed, cluster, random_required)
    df = to_pandas(data)
    colnames = column_names(df)
    used = used_columns(parsed, df, weights, offset, colnames)
    if cluster is not None:
        _check_cluster(df, cluster)
    mask, per_col, sub, cols = complete_frame(
        df, used, [*used, *([cluster] if cluster else []), *also_complete], na_action
    )
    if len(sub) == 0:
        raise DataError("no complete rows left after removing missing values")
    clusters, cluster_spec = _cluster_codes(sub, cluster)
    fam = get_family(family)
    lhs, fixed_mm, re_mats, mm_specs = _matrices(parsed, sub, df, cols)
    y, trials = _response(parsed, sub, lhs, fam)
    X, names, dropped = _fixed_design(fixed_mm)
    groupings, theta_map, theta_names, group_data = _random_part(parsed, sub, re_mats, cluster, cols)
    w, off, se = _known_parts(parsed, sub, df, mask, weights, offset)
    w = _prior_weights(parsed, fam, y, trials, w)
    _check_identifiable(groupings, len(y), fam, se is not None)
    spec = ModelSpec(
        parsed=parsed,
        family=fam.name,
        response=parsed.response or f"cbind({parsed.cbind[0]}, {parsed.cbind[1]})",  # type: ignore[index]
        fixed_spec=fixed_mm.model_spec,
        fixed_names=tuple(names),
        dropped_fixed=tuple(dropped),
        groupings=groupings,
        theta_map=theta_map,
        theta_names=theta_names,
        nobs=len(y),
        n_missing=int((~mask).sum()),
        data_name=data_name(data),
        missing_by_column=per_col,
        weights=_source(weights),
        offset=_source(offset),
        columns=record_columns(sub, predictor_names(parsed, colnames), mm_specs, cols),
        cluster=cluster_spec,
    )
    predictors = tuple(c.name for c in spec.columns)
    rows = None if len(sub) == len(df) else np.flatnonzero(mask)  # None: every row, in order
    design = Design(y, X, group_data, w, off, se, clusters, rows, len(df), sub, predictors)
    return spec, design


_KNOWN_FUNCS = {"log", "exp", "sqrt", "scale", "center", "C", "I", "np", "poly", "bs", "offset", "abs"}


def _formula_variables(expr: str) -> list[str]:
    if not expr:
        return []
    from formulaic import Formula

    try:
        return sorted(Formula(f"{expr} ~ 1" if "~" not in expr else expr).required_variables)
    except Exception:
        return []


def _raise_missing(parsed: ParsedFormula, df: pd.DataFrame) -> None:
    """After formulaic failed: name the variables the data lack, if that was the cause."""
    cols = {str(c) for c in df.columns}
    exprs = [parsed.response or "", parsed.fixed, *(t.expr for t in parsed.random)]
    missing = [n for e in exprs for n in _formula_variables(e) if n not in cols and n not in _KNOWN_FUNCS]
    check_columns(df, dict.fromkeys(missing), "the formula")


def _check_identifiable(groupings: tuple[GroupingSpec, ...], n: int, family: Family, known_se: bool) -> None:
    if known_se and not family.known_se:
        raise ModelError(
            f"se() gives known residual standard errors of a Gaussian response; the {family.name} family "
            "has no residual SD to replace. Drop se() or use family='gaussian'."
        )
    residual = family.dispersion is Dispersion.SCALE and not known_se
    for g in groupings:
        if residual and g.n_levels >= n:
            raise ModelError(
                f"grouping factor {g.name!r} has {g.n_levels} levels for {n} observations; with one "
                "observation per level its variance cannot be told apart from the residual "
                "variance. Remove the term or use a model without a residual."
            )
    q = sum(g.size for g in groupings)
    if residual and q > n:
        raise ModelError(
            f"the model has {q} random effects for {n} observations; the random-effects "
            "covariance and the residual variance are not identifiable. Simplify the "
            "random-effects terms (fewer slopes or (x || g))."
        )


def data_name(data: Any) -> str:
    """The data's name for summaries: a pandas frame's ``attrs["name"]`` (set by
    :func:`multilevel.load_dataset` and the command line), else ``"data"``."""
    name = getattr(data, "attrs", {}).get("name") if isinstance(data, pd.DataFrame) else None
    return name if isinstance(name, str) and name else "data"
