"""``aov(formula, data)``: R's ``aov`` with ``Error()`` strata, and the moment estimates.

The stages, each importable: :func:`~multilevel.classical.parse.parse_aov` (formula ->
treatment part and error terms) -> :func:`~multilevel.classical.data.aov_data` (the rows
used, factors coded) -> :func:`~multilevel.classical.strata.error_strata` -> one
:func:`~multilevel.classical.strata.stratum_table` per stratum ->
:func:`~multilevel.classical.components.variance_components` (expected mean squares, moment
estimates, Satterthwaite intervals) and :func:`~multilevel.classical.components.with_reml`
-> :class:`~multilevel.classical.result.AovResult`.

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

import numpy as np
import pandas as pd

from ..errors import DataWarning, ModelError, warn
from ..model.pvalues import f_sf
from .components import variance_components, with_reml
from .data import aov_data, is_balanced
from .parse import parse_aov
from .result import TABLE_COLUMNS, AovResult
from .strata import StratumTable, error_strata, stratum_table


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
    t          1 10.667  10.667      64 0.0153 *
    Residuals  2  0.333   0.167
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
    ems, components, notes = variance_components(shown, d, level, balanced)
    components, reml_note = with_reml(components, d)
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
