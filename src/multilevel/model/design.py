"""Materialize a parsed formula on data: response, fixed design X, and grouping blocks.

``build_model`` turns (formula, data) into a frozen :class:`~multilevel.model.spec.ModelSpec`
and a :class:`Design` of arrays. ``design_for`` rebuilds the fixed and random
design of new data from the same spec (prediction, simulation).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.linalg

from ..errors import DataError, FormulaError, ModelError, RankDeficiencyWarning
from ..family import Dispersion, Family, get_family
from ..formula import ParsedFormula, RandomTerm, parse_formula
from .data import check_columns, check_finite, complete_rows, to_pandas
from .spec import GroupingSpec, ModelSpec, TermSpec, ThetaMap

_IDENT = re.compile(r"`([^`]+)`|([A-Za-z_.][A-Za-z0-9_.]*)")
RANK_TOL = 1e-7


@dataclass(frozen=True)
class GroupingData:
    """Rows' level codes and the term columns of one grouping block."""

    codes: np.ndarray  # (n,) int64, -1 for a level not in the spec (new data only)
    values: np.ndarray  # (n, q) float64


@dataclass(frozen=True)
class Design:
    """The numbers of a model: one row per observation."""

    y: np.ndarray
    X: np.ndarray
    groups: tuple[GroupingData, ...]
    weights: np.ndarray | None = None
    offset: np.ndarray | None = None
    se: np.ndarray | None = None

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


def _names_in(expr: str, columns: set[str]) -> list[str]:
    out = []
    for m in _IDENT.finditer(expr):
        name = m.group(1) or m.group(2)
        if name in columns:
            out.append(name)
    return out


def _level_name(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def factor_codes(df: pd.DataFrame, factors: tuple[str, ...]) -> tuple[np.ndarray, tuple[str, ...]]:
    """Codes and level names of the (interaction of the) grouping columns.

    Categorical columns keep their level order; others are sorted (as R's
    ``factor()`` does). Unused levels are dropped; interaction levels are
    named ``"a:b"`` with the first factor varying slowest.
    """
    combined = np.zeros(len(df), dtype=np.int64)
    level_lists: list[list[str]] = []
    for name in factors:
        col = df[name]
        if isinstance(col.dtype, pd.CategoricalDtype):
            codes = col.cat.codes.to_numpy().astype(np.int64)
            levels = [_level_name(v) for v in col.cat.categories.tolist()]
        else:
            codes, uniques = pd.factorize(col, sort=True)
            codes = codes.astype(np.int64)
            levels = [_level_name(v) for v in uniques.tolist()]
        combined = combined * len(levels) + codes
        level_lists.append(levels)
    if len(factors) == 1 and np.all(np.bincount(combined, minlength=len(level_lists[0])) > 0):
        return combined, tuple(level_lists[0])  # every level used: the codes are final
    used, inverse = np.unique(combined, return_inverse=True)
    names = []
    for code in used:
        parts = []
        for levels in reversed(level_lists):
            code, r = divmod(int(code), len(levels))
            parts.append(levels[r])
        names.append(":".join(reversed(parts)))
    return inverse.astype(np.int64), tuple(names)


def _codes_for_levels(df: pd.DataFrame, factors: tuple[str, ...], levels: tuple[str, ...]) -> np.ndarray:
    """Codes of new data against known levels; new levels get -1, -2, ... (one code each)."""
    keys = df[list(factors)].astype(object).map(_level_name)
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


def _matrix(spec_or_formula: Any, df: pd.DataFrame, formula: str) -> Any:
    from formulaic import model_matrix

    try:
        if isinstance(spec_or_formula, str):
            return model_matrix(spec_or_formula, df, na_action="ignore")
        return spec_or_formula.get_model_matrix(df, na_action="ignore")
    except FormulaError:
        raise
    except Exception as exc:  # formulaic raises many exception types
        raise FormulaError(f"cannot build the design for {spec_or_formula!s}: {exc}", formula) from exc


def _lme4_order(terms: list[RandomTerm], nlevels: list[int]) -> list[int]:
    """lme4's term order: by decreasing levels (``rev(order(nl))``) if any differ."""
    if all(a == nlevels[0] for a in nlevels):
        return list(range(len(terms)))
    return list(reversed(sorted(range(len(terms)), key=lambda i: nlevels[i])))


def _drop_rank_deficient(X: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str], list[str]]:
    if X.shape[1] == 0:
        return X, names, []
    # Unpivoted QR keeps the column order, so a column that is a combination of
    # earlier ones is the one dropped (as R's dqrdc2, used by lme4).
    R = scipy.linalg.qr(X, mode="r")[0]
    norms = np.linalg.norm(X, axis=0)
    d = np.abs(np.diag(R))
    keep = np.flatnonzero(d > RANK_TOL * np.maximum(norms, 1e-300))
    dropped = [names[i] for i in range(len(names)) if i not in set(keep.tolist())]
    if dropped:
        warnings.warn(
            f"fixed-effect design is rank deficient: dropping {len(dropped)} column"
            f"{'s' if len(dropped) > 1 else ''} {', '.join(dropped)}",
            RankDeficiencyWarning,
            stacklevel=4,
        )
    return X[:, keep], [names[i] for i in keep], dropped


def _vector(arg: Any, df: pd.DataFrame, mask: np.ndarray, what: str) -> np.ndarray | None:
    if arg is None:
        return None
    if isinstance(arg, str):
        check_columns(df, [arg], f"{what}=")
        values = df[arg].to_numpy()[mask]
    else:
        values = np.asarray(arg)
        if values.shape != (len(df),):
            raise DataError(f"{what} has shape {values.shape}; expected one value per row ({len(df)},)")
        values = values[mask]
    values = np.asarray(values, dtype=float)
    check_finite(what, values)
    return values


def build_model(
    formula: str | ParsedFormula,
    data: Any,
    *,
    family: Any = "gaussian",
    weights: Any = None,
    offset: Any = None,
    na_action: str = "omit",
) -> tuple[ModelSpec, Design]:
    """Parse ``formula`` and materialize it on ``data``.

    Examples
    --------
    >>> from multilevel.datasets import load_dataset
    >>> spec, design = build_model("Reaction ~ Days + (Days | Subject)", load_dataset("sleepstudy"))
    >>> spec.fixed_names, [g.name for g in spec.groupings], design.X.shape
    (('Intercept', 'Days'), ['Subject'], (180, 2))
    """
    parsed = formula if isinstance(formula, ParsedFormula) else parse_formula(formula)
    df = to_pandas(data)
    if not parsed.random:
        raise FormulaError(
            "formula contains no random-effects term such as (1 | group); this is not a mixed "
            "model. Add a grouping term, or use an ordinary regression package.",
            parsed.formula,
            (0, len(parsed.formula)),
        )
    cols = {str(c) for c in df.columns}
    exprs = [parsed.response or "", parsed.fixed, *parsed.offsets, parsed.se or ""]
    if parsed.cbind:
        exprs += list(parsed.cbind)
    used = [n for e in exprs for n in _names_in(e, cols)]
    for t in parsed.random:
        used += _names_in(t.expr, cols)
    group_cols = [f for t in parsed.random for f in t.factors]
    check_columns(df, group_cols, "a random-effects grouping")
    used += group_cols
    extra = [a for a in (weights, offset) if isinstance(a, str)]
    check_columns(df, extra, "weights=/offset=")
    mask, per_col = complete_rows(df, used + extra, na_action)
    n_missing = int((~mask).sum())
    sub = df.loc[mask] if n_missing else df
    sub = sub.reset_index(drop=True)
    if len(sub) == 0:
        raise DataError("no complete rows left after removing missing values")

    # response and fixed effects
    fam = get_family(family)
    if parsed.response is None and not fam.trials_response:
        raise FormulaError(
            "cbind() responses need a binomial family: pass family='binomial'",
            parsed.formula,
            (0, parsed.formula.index("~")),
        )
    re_exprs = list(dict.fromkeys(t.expr for t in parsed.random if t.expr != "1"))
    lhs_expr = parsed.response if parsed.response is not None else parsed.cbind[0]  # type: ignore[index]
    joined = f"{lhs_expr} ~ {parsed.fixed}" + "".join(f" | {e}" for e in re_exprs)
    try:
        mm = _matrix(joined, sub, parsed.formula)
    except FormulaError:
        _raise_missing(parsed, df)
        raise
    rhs_parts = mm.rhs if re_exprs else (mm.rhs,)
    fixed_mm = rhs_parts[0]
    re_mats = {e: m for e, m in zip(re_exprs, rhs_parts[1:])}
    lhs = mm.lhs
    trials = None
    if fam.trials_response:
        from .response import binomial_response

        def evaluate(expr: str) -> np.ndarray:
            return _matrix(f"I({expr}) ~ 1", sub, parsed.formula).lhs.to_numpy(dtype=float).ravel()

        y, trials = binomial_response(parsed.response, parsed.cbind, sub, evaluate)
    else:
        if lhs.shape[1] != 1:
            raise DataError(
                f"the response {parsed.response!r} expands to {lhs.shape[1]} columns; a {fam.name} "
                "model needs one numeric response column"
            )
        y = np.asarray(lhs.to_numpy(dtype=float)).ravel()
    check_finite(f"response {parsed.response!r}", y)
    if np.ptp(y) == 0:
        raise DataError(
            f"the response {parsed.response or parsed.cbind} is constant ({y[0]:g}); there is nothing "
            "to model (for a binary response: every outcome is the same)"
        )
    X_full = np.asarray(fixed_mm.to_numpy(dtype=float))
    check_finite("the fixed-effect design", X_full)
    X, names, dropped = _drop_rank_deficient(X_full, list(fixed_mm.columns))

    groupings, theta_map, theta_names, codes_by_group = _groupings(parsed, sub, re_mats)
    group_data = []
    for g in groupings:
        vals = np.column_stack([_term_values(t, sub, parsed.formula, re_mats) for t in g.terms])
        group_data.append(GroupingData(codes=codes_by_group[g.name], values=vals))

    w = _vector(weights, df, mask, "weights")
    if w is not None and np.any(w < 0):
        raise DataError("weights must be non-negative; found negative values")
    if trials is not None:
        w = trials if w is None else w * trials
    off = _vector(offset, df, mask, "offset")
    for expr in parsed.offsets:
        o = _matrix(f"I({expr}) ~ 1", sub, parsed.formula).lhs.to_numpy(dtype=float).ravel()
        check_finite(f"offset({expr})", o)
        off = o if off is None else off + o
    se = None
    if parsed.se is not None:
        se = _matrix(f"I({parsed.se}) ~ 1", sub, parsed.formula).lhs.to_numpy(dtype=float).ravel()
        check_finite(f"se({parsed.se})", se)
        if np.any(se <= 0):
            raise DataError(f"se({parsed.se}) must be positive")

    n = len(y)
    _check_identifiable(groupings, n, fam, se is not None)
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
        nobs=n,
        n_missing=n_missing,
        missing_by_column=per_col,
        weights=weights if isinstance(weights, str) else ("<array>" if weights is not None else None),
        has_offset=off is not None,
    )
    design = Design(y=y, X=X, groups=tuple(group_data), weights=w, offset=off, se=se)
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


def _term_values(
    t: TermSpec, df: pd.DataFrame, formula: str, cache: dict[str, Any] | None = None
) -> np.ndarray:
    if t.mm_spec is None:  # intercept-only term
        return np.ones((len(df), 1))
    m = cache[t.expr] if cache and t.expr in cache else _matrix(t.mm_spec, df, formula)
    vals = np.asarray(m.to_numpy(dtype=float))
    check_finite(f"random-effects term ({t.expr})", vals)
    return vals


def _groupings(
    parsed: ParsedFormula, df: pd.DataFrame, re_mats: dict[str, Any]
) -> tuple[tuple[GroupingSpec, ...], ThetaMap, tuple[str, ...], dict[str, np.ndarray]]:
    terms = list(parsed.random)
    levels = {}
    codes_by_group = {}
    for t in terms:
        if t.group not in levels:
            codes_by_group[t.group], levels[t.group] = factor_codes(df, t.factors)
        if len(levels[t.group]) < 2:
            raise DataError(
                f"grouping factor {t.group!r} has {len(levels[t.group])} level in the data used; "
                "a random effect needs at least 2 levels (drop the term or check the data)"
            )
    order = _lme4_order(terms, [len(levels[t.group]) for t in terms])
    block_names: list[str] = []
    block_terms: dict[str, list[tuple[RandomTerm, Any, list[str]]]] = {}
    for i in order:
        t = terms[i]
        if t.expr == "1":
            mm_spec, colnames = None, ["Intercept"]
        else:
            m = re_mats[t.expr] if t.expr in re_mats else _matrix(t.expr, df, parsed.formula)
            mm_spec, colnames = m.model_spec, [str(c) for c in m.columns]
        if not colnames:
            raise FormulaError(f"random-effects term {t} has no columns", parsed.formula, t.span)
        if t.group not in block_terms:
            block_names.append(t.group)
            block_terms[t.group] = []
        block_terms[t.group].append((t, mm_spec, colnames))
    groupings = []
    for name in block_names:
        offset = 0
        tspecs = []
        seen: set[str] = set()
        for t, mm_spec, colnames in block_terms[name]:
            dup = seen.intersection(colnames)
            if dup:
                raise FormulaError(
                    f"random effect {', '.join(sorted(dup))} appears twice for grouping factor "
                    f"{name!r}; each column may enter one term per factor",
                    parsed.formula,
                    t.span,
                )
            seen.update(colnames)
            tspecs.append(TermSpec(expr=t.expr, columns=tuple(colnames), mm_spec=mm_spec, offset=offset))
            offset += len(colnames)
        first = block_terms[name][0][0]
        groupings.append(
            GroupingSpec(name=name, factors=first.factors, levels=levels[name], terms=tuple(tspecs))
        )
    # theta in lme4 order: terms in sorted order, lower triangle column-wise
    blocks, rows, cols, names = [], [], [], []
    counters = {name: 0 for name in block_names}
    for i in order:
        t = terms[i]
        b = block_names.index(t.group)
        tspec = groupings[b].terms[counters[t.group]]
        counters[t.group] += 1
        for c in range(tspec.q):
            for r in range(c, tspec.q):
                blocks.append(b)
                rows.append(tspec.offset + r)
                cols.append(tspec.offset + c)
                lab = tspec.columns[c] if r == c else f"{tspec.columns[r]}.{tspec.columns[c]}"
                names.append(f"{t.group}.{lab}")
    tm = ThetaMap(
        block=np.array(blocks, dtype=np.int64),
        row=np.array(rows, dtype=np.int64),
        col=np.array(cols, dtype=np.int64),
    )
    return tuple(groupings), tm, tuple(names), codes_by_group


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


def design_for(spec: ModelSpec, newdata: Any, *, need_response: bool = False) -> Design:
    """Rebuild X and the grouping blocks of ``newdata`` with the fitted spec.

    Level codes are negative (-1, -2, ..., one per distinct level) for levels the
    model has not seen.
    """
    df = to_pandas(newdata).reset_index(drop=True)
    m = _matrix(spec.fixed_spec, df, spec.formula)
    names = list(m.columns)
    X = np.asarray(m.to_numpy(dtype=float))[:, [names.index(c) for c in spec.fixed_names]]
    groups = []
    for g in spec.groupings:
        check_columns(df, g.factors, "the grouping factors")
        codes = _codes_for_levels(df, g.factors, g.levels)
        vals = np.column_stack([_term_values(t, df, spec.formula) for t in g.terms])
        groups.append(GroupingData(codes=codes, values=vals))
    y = np.full(len(df), np.nan)
    if need_response and spec.response in df.columns:
        y = df[spec.response].to_numpy(dtype=float)
    off = None
    for expr in spec.parsed.offsets:
        o = _matrix(f"I({expr}) ~ 1", df, spec.formula).lhs.to_numpy(dtype=float).ravel()
        off = o if off is None else off + o
    se = None
    if spec.parsed.se is not None and all(
        c in df.columns for c in _names_in(spec.parsed.se, set(df.columns))
    ):
        try:
            se = _matrix(f"I({spec.parsed.se}) ~ 1", df, spec.formula).lhs.to_numpy(dtype=float).ravel()
        except FormulaError:
            se = None
    return Design(y=y, X=X, groups=tuple(groups), offset=off, se=se)
