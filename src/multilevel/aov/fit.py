"""``aov(formula, data)``: R's ``aov`` with ``Error()`` strata, and the moment estimates.

The stages, each importable: :func:`~multilevel.aov.parse.parse_aov` (formula ->
treatment part and error terms) -> :func:`aov_data` (the rows used, factors coded)
-> :func:`~multilevel.aov.strata.error_strata` -> one
:func:`~multilevel.aov.strata.stratum_table` per stratum -> the expected mean squares
and their solution (:mod:`multilevel.aov.ems`) -> :class:`AovResult`.

>>> import pandas as pd
>>> d = pd.DataFrame({"g": list("aabbcc"), "y": [1.0, 2.0, 4.0, 5.0, 3.0, 3.5]})
>>> r = aov("y ~ 1 + Error(g)", d)
>>> list(r.strata)
['g', 'Within']
>>> round(float(r.strata["g"].loc["Residuals", "Sum Sq"]), 6)
9.083333
>>> round(r.estimates["g"], 6), round(r.estimates["Residual"], 6)
(2.083333, 0.375)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError, DataWarning, FormulaError, MissingDataWarning, ModelError, warn
from ..model.data import check_columns, to_pandas
from ..model.pvalues import f_sf
from .ems import moment_estimates, satterthwaite
from .parse import AovFormula, parse_aov
from .reml import reml_components
from .result import TABLE_COLUMNS, AovResult
from .strata import StratumTable, error_strata, indicator, residual_trace, stratum_table


@dataclass(frozen=True)
class AovData:
    """The rows used: response, treatment matrix with each column's term, error cells."""

    y: np.ndarray
    X: np.ndarray
    assign: tuple[str, ...]
    error_names: tuple[str, ...]
    error_cells: tuple[np.ndarray, ...]
    frame: pd.DataFrame


def aov(formula: str, data: object, level: float = 0.95) -> AovResult:
    """Classical ANOVA with ``Error()`` strata, as R's ``summary(aov(formula, data))``.

    Parameters
    ----------
    formula : ``"response ~ treatments + Error(strata)"``, e.g.
        ``"yield ~ N*P*K + Error(block)"`` or ``"strength ~ 1 + Error(batch/cask)"``.
        Without ``Error()`` the one stratum is ``"Within"``. Factors are categorical
        (string, boolean or categorical columns; numeric columns are covariates); the
        error strata must be factors.
    data : pandas / polars DataFrame, pyarrow Table or dict of arrays.
    level : confidence level of the Satterthwaite intervals of the variance components.

    Returns
    -------
    AovResult
        The stratum tables, the expected mean squares, the moment estimates of the
        variance components (negative values kept and flagged) with Satterthwaite
        intervals, and the balance flag. With unequal replication the tables are R's
        but the moment estimates are not unique: a :class:`DataWarning` says so.

    Examples
    --------
    >>> import pandas as pd
    >>> d = pd.DataFrame({"b": list("xxyyzz"), "t": list("pqpqpq"), "y": [5.0, 7, 6, 9, 4, 7]})
    >>> r = aov("y ~ t + Error(b)", d)
    >>> int(r.strata["Within"].loc["t", "Df"]), round(float(r.strata["Within"].loc["t", "Sum Sq"]), 6)
    (1, 10.666667)
    >>> print(r)  # doctest: +ELLIPSIS
    Error: b
    ...
    Error: Within
              Df Sum Sq Mean Sq F value Pr(>F)
    t          1  10.67   10.67   64.00 0.0153 *
    ...
    """
    spec = parse_aov(formula)
    if not 0.0 < level < 1.0:
        raise ModelError(f"level must lie strictly between 0 and 1; got {level!r}")
    d = aov_data(spec, data)
    n = d.y.shape[0]
    strata = error_strata(d.error_names, d.error_cells, n)
    tables = [stratum_table(s, d.y, d.X, d.assign) for s in strata]
    shown = [t for t in tables if t.stratum.name != "(Intercept)"]
    frames = {t.stratum.name: _frame(t) for t in shown}
    balanced = is_balanced(d, spec)
    ems, components, notes = _components(shown, d, level, balanced)
    components, reml_note = _with_reml(components, d)
    notes = (*notes, *reml_note)
    negative = tuple(str(k) for k, v in components["negative"].items() if v)
    if negative:
        note = (
            f"the moment estimate of {', '.join(negative)} is negative (a stratum's mean square "
            "is below the one beneath it); it is reported as computed, not set to 0. REML puts "
            "such a component at 0."
        )
        notes = (*notes, note)
        warn(note, DataWarning)
    return AovResult(formula, n, frames, ems, components, balanced, negative, level, notes)


def aov_data(spec: AovFormula, data: object) -> AovData:
    """The complete rows of the variables of ``spec``, factors coded, and the treatment matrix."""
    from formulaic import Formula, model_matrix

    df = to_pandas(data)
    if len(df) == 0 or df.shape[1] == 0:
        raise DataError("the data have no rows; aov needs observations of the response and the factors")
    try:
        needed = sorted(Formula(spec.treatment).required_variables)
    except Exception as exc:  # formulaic raises many exception types
        raise FormulaError(
            f"cannot parse the treatment part {spec.treatment!r}: {exc}", spec.formula
        ) from exc
    check_columns(df, [*needed, *(v for v in spec.error_factors if v not in needed)], "the aov formula")
    used = list(dict.fromkeys([*needed, *spec.error_factors]))
    frame = _complete(df[used].copy(), used)
    for col in spec.error_factors:
        frame[col] = _as_factor(frame[col], col, error=True)
    for col in needed:
        if col not in spec.error_factors and not pd.api.types.is_numeric_dtype(frame[col]):
            frame[col] = _as_factor(frame[col], col, error=False)
    if pd.api.types.is_bool_dtype(frame[spec.response]) or not pd.api.types.is_numeric_dtype(
        frame[spec.response]
    ):
        raise DataError(f"the response {spec.response!r} must be numeric; got {frame[spec.response].dtype}")
    try:
        mm = model_matrix(spec.treatment, frame, na_action="raise")
    except Exception as exc:  # formulaic raises many exception types
        raise FormulaError(
            f"cannot build the treatment matrix of {spec.treatment!r}: {exc}", spec.formula
        ) from exc
    y = np.asarray(mm.lhs, dtype=float)[:, 0]
    X = np.asarray(mm.rhs, dtype=float)
    assign = [""] * X.shape[1]
    for term, sl in mm.rhs.model_spec.term_slices.items():
        for j in range(sl.start, sl.stop):
            assign[j] = str(term)
    if not np.all(np.isfinite(y)):
        raise DataError(f"the response {spec.response!r} holds inf; aov needs finite values")
    names = tuple(":".join(t) for t in spec.error_terms)
    cells = tuple(_cell_codes(frame, t) for t in spec.error_terms)
    return AovData(y, X, tuple(assign), names, cells, frame)


def _complete(frame: pd.DataFrame, used: list[str]) -> pd.DataFrame:
    keep = frame.notna().all(axis=1).to_numpy()
    if not keep.all():
        warn(
            f"{int((~keep).sum())} rows with missing values in {', '.join(used)} dropped", MissingDataWarning
        )
        frame = frame.loc[keep].reset_index(drop=True)
    if len(frame) == 0:
        raise DataError(
            f"no complete rows in {', '.join(used)}; aov needs observations without missing values"
        )
    return frame


def _as_factor(col: pd.Series, name: str, error: bool) -> pd.Series:
    """``col`` as a categorical: its own categories (unused dropped), else in order of appearance."""
    if isinstance(col.dtype, pd.CategoricalDtype):
        return col.cat.remove_unused_categories()
    if error and pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        raise DataError(
            f"Error() stratum column {name!r} is numeric ({col.dtype}); strata are factors. "
            f"Make it categorical first, e.g. data[{name!r}] = data[{name!r}].astype('category')"
        )
    return pd.Series(pd.Categorical(col, categories=pd.unique(col)), index=col.index, name=name)


def _cell_codes(frame: pd.DataFrame, term: tuple[str, ...]) -> np.ndarray:
    """Each row's cell of the factors in ``term``, coded 0..L-1 (occurring cells only)."""
    codes = np.column_stack([frame[v].cat.codes.to_numpy() for v in term])
    _, inverse = np.unique(codes, axis=0, return_inverse=True)
    return np.asarray(inverse, dtype=np.int64).reshape(-1)


def is_balanced(d: AovData, spec: AovFormula) -> bool:
    """Equal replication: every occurring cell of every factor combination in the model
    (each error term, each treatment factor and all factors together) has as many rows."""
    factors = [c for c in d.frame.columns if isinstance(d.frame[c].dtype, pd.CategoricalDtype)]
    groups: list[tuple[str, ...]] = [*spec.error_terms, *((f,) for f in factors)]
    if factors:
        groups.append(tuple(factors))
    for g in groups:
        counts = np.bincount(_cell_codes(d.frame, g))
        if counts.min() != counts.max():
            return False
    return True


def _frame(t: StratumTable) -> pd.DataFrame:
    res_ms = t.resid_ss / t.resid_df if t.resid_df > 0 else np.nan
    rows = []
    for term, df, ss in t.terms:
        ms = ss / df
        F = ms / res_ms if t.resid_df > 0 else np.nan
        p = f_sf(F, df, t.resid_df) if np.isfinite(F) else np.nan
        rows.append((term, df, ss, ms, F, p))
    if t.resid_df > 0:
        rows.append(("Residuals", t.resid_df, t.resid_ss, res_ms, np.nan, np.nan))
    out = pd.DataFrame([r[1:] for r in rows], index=[r[0] for r in rows], columns=list(TABLE_COLUMNS))
    out["Df"] = out["Df"].astype(int)
    return out


def _components(
    shown: list[StratumTable], d: AovData, level: float, balanced: bool
) -> tuple[pd.DataFrame, pd.DataFrame, tuple[str, ...]]:
    """The EMS table, the moment estimates with Satterthwaite intervals, and notes."""
    names = [*d.error_names, "Residual"]
    with_df = [t for t in shown if t.resid_df > 0]
    if not with_df:
        note = "no stratum has residual degrees of freedom: the variance components are not estimable"
        warn(note, DataWarning)
        empty = pd.DataFrame(columns=["df", "MS", *names])
        comps = pd.DataFrame(np.nan, index=names, columns=["estimate", "negative", "df", "lower", "upper"])
        comps["negative"] = False
        return empty, comps, (note,)
    Z = [indicator(c, int(c.max()) + 1) for c in d.error_cells] + [None]
    coef = np.array([[residual_trace(t, z) / t.resid_df for z in Z] for t in with_df])
    ms = np.array([t.resid_ss / t.resid_df for t in with_df])
    dfs = np.array([float(t.resid_df) for t in with_df])
    ems = pd.DataFrame(coef, index=[t.stratum.name for t in with_df], columns=names)
    ems.insert(0, "MS", ms)
    ems.insert(0, "df", dfs.astype(int))
    notes: list[str] = []
    est, A = moment_estimates(coef, ms)
    if coef.shape[0] != coef.shape[1] or np.linalg.matrix_rank(coef) < len(names):
        notes.append(
            f"{coef.shape[0]} expected-mean-square equations for {len(names)} variance components: "
            f"{', '.join(n for n, e in zip(names, est, strict=True) if np.isnan(e)) or 'none'} not "
            "determined by the moment equations (NaN)"
        )
    if not balanced:
        notes.append(
            "unequal replication: the design is unbalanced, so the method-of-moments estimates are not "
            "unique (they depend on the order of the sequential sums of squares); REML is the usual remedy"
        )
    for note in notes:
        warn(note, DataWarning)
    rows = []
    tiny = 1e-12 * float(np.max(np.abs(ms)))  # a rounding error below 0 is a zero, not a flag
    for k in range(len(names)):
        nu, lo, hi = satterthwaite(A[k], ms, dfs, level)
        rows.append((float(est[k]), bool(est[k] < -tiny), nu, lo, hi))
    comps = pd.DataFrame(rows, index=names, columns=["estimate", "negative", "df", "lower", "upper"])
    return ems, comps, tuple(notes)


# REML here factors a dense (levels x levels) matrix at every step of the optimizer;
# past this many levels of the error terms it is left to the mixed-model fit
# (multilevel.fit with (1 | term) terms, whose factor is sparse)
REML_MAX_LEVELS = 300


def _with_reml(components: pd.DataFrame, d: AovData) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """``components`` with a ``reml`` column (bounded at 0), started at the moment estimates."""
    out = components.copy()
    out["reml"] = np.nan
    if not d.error_cells:
        out.loc["Residual", "reml"] = out.loc["Residual", "estimate"]  # one stratum: the same
        return out, ()
    levels = sum(int(c.max()) + 1 for c in d.error_cells)
    if levels > REML_MAX_LEVELS:
        note = f"REML not computed here ({levels} error levels); fit the mixed model with (1 | term) terms"
        return out, (note,)
    est = out["estimate"].to_numpy(dtype=float)
    resid = est[-1] if est[-1] > 0 else 1.0
    start = np.sqrt(np.clip(np.nan_to_num(est[:-1], nan=resid), 0.0, None) / resid)
    try:
        reml = reml_components(d.y, d.X, d.error_cells, start)
    except np.linalg.LinAlgError:
        return out, ("REML failed (a singular system); fit the mixed model for REML estimates",)
    values = np.array(reml.values)
    lost = _unidentified(d)
    values[lost] = np.nan
    out["reml"] = values
    if not lost.any():
        return out, ()
    which = ", ".join(str(k) for k in out.index[lost])
    return out, (
        f"REML cannot tell {which} apart (a term confounded with the treatments or the residual): NaN",
    )


def _unidentified(d: AovData) -> np.ndarray:
    """Components REML cannot estimate: a term whose cells lie in the treatment columns'
    span (the error contrasts do not see it), or with one row per cell (its variance and
    the residual's enter only as a sum); the last entry is the residual."""
    n = d.y.shape[0]
    U, s, _ = np.linalg.svd(d.X, full_matrices=False)
    Xb = U[:, s > 1e-10 * max(1.0, float(s.max(initial=0.0)))]
    lost = np.zeros(len(d.error_cells) + 1, dtype=bool)
    for k, codes in enumerate(d.error_cells):
        Z = indicator(codes, int(codes.max()) + 1)
        off = Z - Xb @ (Xb.T @ Z)
        if float(np.sum(off * off)) < 1e-10 * n:
            lost[k] = True
        if Z.shape[1] == n:
            lost[k] = lost[-1] = True
    return lost
