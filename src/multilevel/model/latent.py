"""Models with latent covariates, ``me(x, sdx)`` and ``mi(x)``: the data they read,
checked, and what the sampler (:mod:`multilevel.bayes.latent`) and the likelihood fit
of ``me()`` (:mod:`multilevel.lmm.measurement`) take.

:func:`prepare` checks the columns and fills the missing values of ``mi()``
columns (so that the outcome model keeps those rows); the caller materializes the
rewritten formula on the filled frame; :func:`finish` then locates each latent
column in the design and collects its arrays.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, ModelError
from ..formula.latent import LatentTerm, latent_terms
from .data import to_pandas
from .design import Design, build_model
from .spec import ModelSpec


@dataclass(frozen=True)
class LatentInfo:
    """One latent column of the outcome model's design."""

    kind: str  # "me" or "mi"
    column: str
    label: str  # the term, the outcome coefficient's name
    index: int  # its column in X
    size: int  # latent values: the rows (me) or the missing rows (mi)
    sub_names: tuple[str, ...] = ()  # mi: the sub-model's coefficients ("x_Intercept", "x_z")
    sub_intercept: int | None = None
    sub_formula: str = ""  # mi: the sub-model, "x ~ z"
    columns: tuple[int, ...] = ()  # every column of X it enters: the main effect, its interactions
    sub_groups: tuple[tuple[str, tuple[str, ...]], ...] = ()  # mi: random intercepts (factor, levels)

    @property
    def site(self) -> str:
        return f"zme_{self.column}" if self.kind == "me" else f"Ymi_{self.column}"

    @property
    def in_x(self) -> tuple[int, ...]:
        return self.columns or (self.index,)

    def sub_sd(self, group: str) -> str:
        """brms's name of a sub-model's random-intercept SD, ``sd_g__x_Intercept``."""
        return f"sd_{group}__{self.column}_Intercept"

    def sub_site(self, group: str) -> str:
        """The sample site of its standardized effects (``z_``: not reported itself)."""
        return f"z_mi_{self.column}_{group}"


def latent_names(names: list[str] | tuple[str, ...], infos: tuple[LatentInfo, ...]) -> list[str]:
    """The outcome model's coefficient names with each latent column named by its term:
    ``x`` as ``me(x, sdx)``, ``x:z`` as ``me(x, sdx):z``."""
    out = list(names)
    for li in infos:
        for j in li.in_x:
            out[j] = ":".join(li.label if f == li.column else f for f in out[j].split(":"))
    return out


def _sub_formula(column: str, text: Any) -> str:
    """``mi={"x": "x ~ z"}``, ``"~ z"`` or ``"z"``: the right-hand side of x's sub-model."""
    if not isinstance(text, str) or not text.strip():
        raise ModelError(
            f"mi={{{column!r}: ...}} must be a formula such as '~ z' or '{column} ~ z', got {text!r}"
        )
    if "~" in text:
        lhs, rhs = text.split("~", 1)
        if lhs.strip() not in ("", column):
            raise ModelError(f"the sub-model of mi({column}) has {column} on its left, got {text!r}")
        text = rhs
    return text.strip()


def _numeric_columns(df: pd.DataFrame, terms: tuple[LatentTerm, ...]) -> pd.DataFrame:
    """Object columns of numbers and missing values (``None``) read as floats."""
    out = df
    for t in terms:
        for c in (t.column, t.sd_column):
            if c is None or c not in df.columns or pd.api.types.is_numeric_dtype(df[c]):
                continue
            if pd.api.types.is_bool_dtype(df[c]):
                continue
            try:
                values = pd.to_numeric(df[c], errors="raise")
            except (TypeError, ValueError):
                continue  # _check_columns names it
            if out is df:
                out = df.copy()
            out[c] = values.astype(float)
    return out


def _check_columns(df: pd.DataFrame, terms: tuple[LatentTerm, ...]) -> None:
    for t in terms:
        for c in (t.column, t.sd_column):
            if c is not None and c not in df.columns:
                raise DataError(f"{t.label}: the data have no column {c!r}")
            if c is not None and not pd.api.types.is_numeric_dtype(df[c]):
                raise DataError(f"{t.label}: column {c!r} must be numeric, got {df[c].dtype}")
        if t.kind == "me":
            x = df[t.column].to_numpy(dtype=float)
            sd = df[t.sd_column].to_numpy(dtype=float)
            ok = np.isnan(sd) | (np.isfinite(sd) & (sd > 0))
            if not ok.all():
                bad = int(np.flatnonzero(~ok)[0])
                raise DataError(
                    f"{t.label}: the measurement SDs in {t.sd_column!r} must be positive and finite; "
                    f"row {bad} has {sd[bad]!r}"
                )
            if np.isinf(x).any():
                raise DataError(f"{t.label}: column {t.column!r} has infinite values")


def _check_design(spec: ModelSpec, terms: tuple[LatentTerm, ...]) -> list[tuple[int, tuple[int, ...]]]:
    """Each latent column's main effect in X and every column it enters (its products
    with other columns, as brms's interactions of special terms); refused inside a
    function of the formula or a random slope."""
    names = spec.fixed_names
    out = []
    for t in terms:
        if names.count(t.column) != 1:
            raise ModelError(
                f"{t.label} must enter the formula as a main effect (it may also enter interactions)"
            )
        cols = []
        for j, n in enumerate(names):
            if t.column in n.split(":"):
                cols.append(j)
            elif _reads(n, t.column):
                raise ModelError(
                    f"{t.column!r} enters {n!r}: {t.kind}() terms enter as main effects and in "
                    f"interactions such as {t.label}:z, not inside a function of the formula"
                )
        for g in spec.groupings:
            if t.column in g.columns or any(t.column in c.split(":") for c in g.columns):
                raise ModelError(
                    f"{t.label}: a random slope on a latent covariate ({g.name}) is not supported"
                )
        out.append((names.index(t.column), tuple(cols)))
    return out


def _linear_parts(
    setup: LatentSetup, rows: np.ndarray, column: str, cols: tuple[int, ...], X: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """``X0`` and ``D`` with ``X[:, cols] = X0 + x D`` for the latent column's values x:
    the design again at x + 1 and x + 2 (an interaction is linear in each factor; the
    second shift checks it). Only the right-hand side is materialized again, with a
    placeholder response, so that the outcome's own checks (cbind(), trials, weights)
    do not run twice."""
    x = setup.filled[column].to_numpy(dtype=float)[rows]
    if len(cols) == 1:
        return np.zeros((x.size, 1)), np.ones((x.size, 1))
    shifted = []
    formula = "latent_shift_response__ ~ " + setup.rewritten.split("~", 1)[1]
    for k in (1.0, 2.0):
        frame = setup.filled.iloc[rows].copy()
        frame[column] = frame[column].astype(float) + k
        frame["latent_shift_response__"] = np.arange(len(frame), dtype=float)  # any non-constant numbers
        design_k = build_model(formula, frame, na_action="raise")[1]
        if design_k.X.shape != X.shape:  # pragma: no cover - a shift keeps the column span
            raise ModelError(f"the design changes when {column!r} shifts; write the interaction explicitly")
        shifted.append(design_k.X[:, list(cols)])
    base = X[:, list(cols)]
    D = shifted[0] - base
    X0 = base - x[:, None] * D
    scale = 1.0 + np.abs(shifted[1])
    if not np.all(np.abs(X0 + (x[:, None] + 2.0) * D - shifted[1]) <= 1e-8 * scale):
        raise ModelError(f"{column!r} enters a column nonlinearly; latent covariates enter as products only")
    return X0, D


@dataclass
class LatentSetup:
    """What :func:`prepare` found: the rewritten formula, the filled frame, the columns
    that must also be complete, and each ``mi()`` column's missing rows and sub-model."""

    formula: str
    rewritten: str
    terms: tuple[LatentTerm, ...]
    source: pd.DataFrame = field(repr=False)
    filled: pd.DataFrame = field(repr=False)
    also_complete: list[str]
    holes: dict[str, np.ndarray] = field(repr=False)
    subs: dict[str, str]


def prepare(formula: str, data: Any, mi: Mapping[str, Any] | None) -> LatentSetup | None:
    """The latent terms of a formula checked against the data; None when it has none."""
    rewritten, terms = latent_terms(formula)
    mi = dict(mi or {})
    if not terms and not mi:
        return None
    mi_cols = [t.column for t in terms if t.kind == "mi"]
    unknown = sorted(set(mi) - set(mi_cols))
    if unknown:
        raise ModelError(
            f"mi= names {unknown}, which have no mi() term in the formula (mi() terms: {mi_cols})"
        )
    df = _numeric_columns(to_pandas(data), terms)
    _check_columns(df, terms)
    subs = {c: _sub_formula(c, mi.get(c, "1")) for c in mi_cols}
    filled = df.copy()
    holes: dict[str, np.ndarray] = {}
    for c in mi_cols:
        holes[c] = filled[c].isna().to_numpy()
        if holes[c].all():
            raise DataError(f"mi({c}): every value of {c!r} is missing")
        filled[c] = filled[c].fillna(float(filled[c].mean()))
    extra = [t.sd_column for t in terms if t.sd_column]
    sub_cols = sorted({str(n) for rhs in subs.values() for n in filled.columns if _reads(rhs, str(n))})
    return LatentSetup(formula, rewritten, terms, df, filled, [*extra, *sub_cols], holes, subs)


def finish(
    setup: LatentSetup, spec: ModelSpec, design: Design
) -> tuple[tuple[LatentInfo, ...], tuple[dict[str, Any], ...], dict[str, list[str]]]:
    """Each latent column's record and arrays, and the input rows of the imputed values."""
    df, filled = setup.source, setup.filled
    rows = design.rows if design.rows is not None else np.arange(len(df))
    index = _check_design(spec, setup.terms)
    infos, arrays, labels = [], [], {}
    for t, (j, cols) in zip(setup.terms, index):
        x = filled[t.column].to_numpy(dtype=float)[rows]
        X0, D = _linear_parts(setup, rows, t.column, cols, design.X)
        if t.kind == "me":
            sd = df[t.sd_column].to_numpy(dtype=float)[rows]
            infos.append(LatentInfo("me", t.column, t.label, j, x.size, columns=cols))
            arrays.append({"obs": x, "sd": sd, "observed": np.ones(x.size, bool), "X0": X0, "D": D})
            continue
        miss = setup.holes[t.column][rows]
        sub = f"{t.column} ~ {setup.subs[t.column]}"
        sub_spec, sub_design = build_model(sub, filled.iloc[rows], na_action="raise", random_required=False)
        groups = _sub_groups(t.column, setup.subs[t.column], sub_spec)
        W = sub_design.X
        names = tuple(f"{t.column}_{n}" for n in sub_spec.fixed_names)
        icpt = sub_spec.fixed_names.index("Intercept") if "Intercept" in sub_spec.fixed_names else None
        wbar = W.mean(axis=0) if icpt is not None else np.zeros(W.shape[1])
        if icpt is not None:
            wbar[icpt] = 0.0
        infos.append(LatentInfo("mi", t.column, t.label, j, int(miss.sum()), names, icpt, sub, cols, groups))
        arrays.append(
            {
                "obs": x,
                "index": np.flatnonzero(miss),
                "observed": ~miss,
                "W": W,
                "wbar": wbar,
                "X0": X0,
                "D": D,
                "codes": tuple(g.codes for g in sub_design.groups),
            }
        )
        labels[t.column] = [str(v) for v in df.index[rows][miss]]
    return tuple(infos), tuple(arrays), labels


def _sub_groups(column: str, rhs: str, spec: ModelSpec) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """An mi() sub-model's random intercepts, ``x ~ z + (1 | g)`` (brms's ``bf(x | mi() ~ z
    + (1 | g))``); slopes are refused."""
    out = []
    for g in spec.groupings:
        if g.columns != ("Intercept",):
            raise ModelError(
                f"the sub-model of mi({column}) takes random intercepts, (1 | {g.name}); "
                f"{rhs!r} has {', '.join(g.columns)} by {g.name}"
            )
        out.append((g.name, tuple(g.levels)))
    return tuple(out)


def _reads(rhs: str, name: str) -> bool:
    return re.search(rf"(?<![\w.]){re.escape(name)}(?![\w.])", rhs) is not None
