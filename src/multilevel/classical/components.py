"""The variance-component stage: the expected-mean-squares table, the moment estimates
with Satterthwaite intervals, and REML beside them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import DataWarning, warn
from .data import AovData
from .ems import moment_estimates, satterthwaite
from .reml import reml_components
from .strata import StratumTable, indicator, residual_trace


def variance_components(
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


# REML here factors a dense (levels x levels) matrix at every step of the optimizer
# when there are two error terms or more; past this many levels it is left to the mixed-model fit
# (multilevel.fit with (1 | term) terms, whose factor is sparse)
REML_MAX_LEVELS = 300


def with_reml(components: pd.DataFrame, d: AovData) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """``components`` with a ``reml`` column (bounded at 0), started at the moment estimates."""
    out = components.copy()
    out["reml"] = np.nan
    if not d.error_cells:
        out.loc["Residual", "reml"] = out.loc["Residual", "estimate"]  # one stratum: the same
        return out, ()
    levels = sum(int(c.max()) + 1 for c in d.error_cells)
    if levels > REML_MAX_LEVELS and len(d.error_cells) > 1:  # one term: a diagonal factor
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
