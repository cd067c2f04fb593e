"""The likelihood-ratio table as text and as plain data (lme4's printed ``anova``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..model.compare import CHIBAR, Comparison

SIGNIF_LEGEND = "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"


def _stars(p: float) -> str:
    if not math.isfinite(p):
        return ""
    for cut, mark in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p < cut:
            return mark
    return ""


def _column(values: np.ndarray, digits: int = 5) -> list[str]:
    """R's column formatting: a common number of decimals giving the smallest value
    ``digits`` significant digits; NaN as blank."""
    finite = np.abs(values[np.isfinite(values) & (values != 0)])
    if finite.size == 0:
        return ["" if not math.isfinite(v) else "0" for v in values]
    small = float(np.min(finite))
    whole = math.floor(math.log10(small)) + 1
    dec = min(max(0, digits - whole), 12)
    return [f"{v:.{dec}f}" if math.isfinite(v) else "" for v in values]


def format_comparison(c: Comparison) -> str:
    """The table as lme4 prints it: the models and formulas, the table with significance
    stars, and notes on refitting and on the reference distribution.

    >>> import multilevel
    >>> d = multilevel.load_dataset("sleepstudy")
    >>> a = multilevel.anova(multilevel.fit("Reaction ~ Days + (1 | Subject)", d),
    ...                      multilevel.fit("Reaction ~ Days + (Days | Subject)", d))
    >>> format_comparison(a).splitlines()[0]
    'Models:'
    """
    t = c.table
    lines = ["Models:"]
    lines += [f"{name}: {formula}" for name, formula in zip(t.index, c.formulas)]
    pvals = t["Pr(>Chisq)"].to_numpy(dtype=float)
    cols: dict[str, list[str]] = {"npar": [str(int(v)) for v in t["npar"]]}
    for name in ("AIC", "BIC", "logLik", "deviance", "Chisq"):
        cols[name] = _column(t[name].to_numpy(dtype=float))
    cols["Df"] = ["" if v is None or v is np.nan or str(v) == "<NA>" else str(int(v)) for v in t["Df"]]
    cols["Pr(>Chisq)"] = [f"{p:.4g}" if math.isfinite(p) else "" for p in pvals]
    if "Pr(PB)" in t:
        cols["Pr(PB)"] = [f"{p:.4g}" if math.isfinite(p) else "" for p in t["Pr(PB)"].to_numpy(dtype=float)]
    cols[""] = [_stars(p) for p in pvals]
    label_w = max(len(str(i)) for i in t.index)
    widths = {k: max(len(k), *(len(s) for s in v)) for k, v in cols.items()}
    header = " " * label_w + "".join(f" {k:>{widths[k]}}" if k else f" {'':<3}" for k in cols)
    lines.append(header.rstrip())
    for r, name in enumerate(t.index):
        cells = "".join(f" {cols[k][r]:>{widths[k]}}" if k else f" {cols[k][r]:<3}" for k in cols)
        lines.append(f"{name!s:<{label_w}}{cells}".rstrip())
    lines += ["---", SIGNIF_LEGEND]
    lines.append(f"logLik: {c.criterion}")
    if c.refitted:
        lines.append(f"refitted with ML (instead of REML) for the comparison: {', '.join(c.refitted)}")
    names = list(t.index)
    for i, test in enumerate(c.tests):
        if test == CHIBAR:
            lines.append(
                f"Pr(>Chisq) of {names[i]} vs {names[i - 1]}: {test} "
                "(a variance on its boundary; Self & Liang 1987, Stram & Lee 1994)"
            )
    for i, pb in enumerate(c.pb):
        if pb is not None:
            lines.append(
                f"Pr(PB) of {names[i]} vs {names[i - 1]}: parametric bootstrap, {pb.n_used} simulations "
                f"from {names[i - 1]} (seed {pb.seed}"
                + (f"; {pb.n_failed} with a failed refit, left out)" if pb.n_failed else ")")
            )
    if c.boundary == "chibar" and CHIBAR not in c.tests:
        lines.append(
            "boundary='chibar' asked for, but no comparison adds exactly one random effect with the "
            "same fixed effects: every p-value is chi-square(Df)"
        )
    return "\n".join(lines)


def _plain(v: Any) -> Any:
    if v is None or (isinstance(v, float) and not math.isfinite(v)) or str(v) == "<NA>":
        return None
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        return float(v)
    return v


class Anova(Comparison):
    """The likelihood-ratio comparison :func:`multilevel.anova` returns: ``table`` (a
    DataFrame as lme4's), ``formulas``, ``refitted``, ``criterion``, ``tests``; ``str()``
    prints it as lme4 does.

    Examples
    --------
    >>> import multilevel
    >>> d = multilevel.load_dataset("sleepstudy")
    >>> m0 = multilevel.fit("Reaction ~ 1 + (Days | Subject)", d)
    >>> m1 = multilevel.fit("Reaction ~ Days + (Days | Subject)", d)
    >>> a = multilevel.anova(m0, m1)
    >>> round(float(a.table.loc["m2", "Chisq"]), 3)
    23.537
    """

    def summary(self) -> str:
        """The table as lme4 prints it."""
        return format_comparison(self)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict:
        """Plain JSON-able data: one record per model, and the notes."""
        rows = []
        for name, row in self.table.iterrows():
            rows.append({"model": name, **{k: _plain(v) for k, v in row.items()}})
        return {
            "models": rows,
            "formulas": list(self.formulas),
            "criterion": self.criterion,
            "refitted": list(self.refitted),
            "tests": list(self.tests),
            "boundary": self.boundary,
            "parametric_bootstrap": [
                None
                if t is None
                else {"p": t.p, "simulations": t.n_used, "failed": t.n_failed, "seed": t.seed}
                for t in self.pb
            ],
        }
