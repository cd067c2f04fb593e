"""The text of an ``aov`` fit, laid out and rounded as R's ``print(summary(aov))``.

R's ``print.anova`` -> ``printCoefmat`` with ``digits = 4``: sums of squares and mean
squares through ``zapsmall`` then ``format``; F values rounded to 3 decimals then
formatted; p-values by ``format.pval`` to 3 digits; significance stars and their legend.
``format`` here follows R's ``formatReal``: each entry to ``digits`` significant digits
without trailing zeros, the column with the most decimals any entry needs, scientific
notation where that is narrower.

>>> r_format(np.array([189.28, 8.4, 95.2, 21.28, 33.14, 0.48, 185.29]), 4)
['189.28', '8.40', '95.20', '21.28', '33.14', '0.48', '185.29']
>>> format_pvalues(np.array([0.00437181, 0.4749041, 0.02879505]), 3)
['0.00437', '0.47490', '0.02880']
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from .result import AovResult

SIGNIF = "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"
DIGITS = 4  # R: max(3, getOption("digits") - 3)
EPS = float(np.finfo(float).eps)


def format_aov(result: AovResult) -> str:
    """The text of ``summary(aov)``: one table per stratum under ``Error: <stratum>``,
    then the expected mean squares and the variance components with their intervals.

    A single ``Within`` stratum (no ``Error()`` term) prints without a header, as R does.
    """
    blocks = []
    headed = list(result.strata) != ["Within"]
    for name, table in result.strata.items():
        text = _format_table(table)
        blocks.append(f"Error: {name}\n{text}" if headed else text)
    out = "\n\n".join(blocks)
    if len(result.ems):
        out += "\n\nExpected mean squares:\n" + "\n".join(f"  {e}" for e in result.expressions())
        pct = f"{100 * result.level:g}%"
        comps = result.components.copy()
        comps["negative"] = comps["negative"].map({True: "yes", False: ""})
        body = comps.to_string(float_format=lambda v: f"{v:.6g}", na_rep="")
        head = f"Variance components (method of moments, {pct} Satterthwaite intervals; REML beside)"
        out += f"\n\n{head}:\n{body}"
    if result.notes:
        out += "\n\n" + "\n".join(f"Note: {n}" for n in result.notes)
    return out


def _format_table(table: pd.DataFrame) -> str:
    """One stratum's table as ``printCoefmat`` prints it (stars column, left-justified as
    R's ``format`` of characters, and legend when a p-value is below 0.1)."""
    p = table["Pr(>F)"].to_numpy(dtype=float)
    F = table["F value"].to_numpy(dtype=float)
    cols: dict[str, list[str]] = {"Df": [str(int(v)) for v in table["Df"]]}
    for c in ("Sum Sq", "Mean Sq"):
        cols[c] = r_format(zapsmall(table[c].to_numpy(dtype=float), DIGITS), DIGITS)
    cols["F value"] = r_format(np.round(F, DIGITS - 1), DIGITS)
    cols["Pr(>F)"] = format_pvalues(p, DIGITS - 1)
    stars = bool(np.any(p[~np.isnan(p)] < 0.1))
    if stars:
        cols[""] = ["" if math.isnan(v) else _stars(v) for v in p]
    names = [str(t) for t in table.index]
    wname = max(len(n) for n in names)
    widths = {c: max(len(c), *(len(v) for v in vals)) for c, vals in cols.items()}
    lines = [(" " * wname + "".join(" " + c.rjust(widths[c]) for c in cols)).rstrip()]
    for i, name in enumerate(names):
        cells = "".join(" " + (cols[c][i].ljust if c == "" else cols[c][i].rjust)(widths[c]) for c in cols)
        lines.append((name.ljust(wname) + cells).rstrip())
    if stars:
        lines += ["---", SIGNIF]
    return "\n".join(lines)


def zapsmall(x: np.ndarray, digits: int) -> np.ndarray:
    """R's ``zapsmall``: round to ``digits - log10(max |x|)`` decimals (R rounds that count
    to the nearest integer)."""
    finite = x[np.isfinite(x)]
    mx = float(np.max(np.abs(finite))) if finite.size else 0.0
    if mx <= 0:
        return np.round(x, digits)
    return np.round(x, max(0, math.floor(digits - math.log10(mx) + 0.5)))


def r_format(x: np.ndarray, digits: int) -> list[str]:
    """R's ``format(x, digits)`` of the finite entries of a column (others blank)."""
    finite = [float(v) for v in x if math.isfinite(v)]
    if not finite:
        return ["" for _ in x]
    sig = [_significant(v, digits) for v in finite]
    rgt = max(max(0, n - k - 1) for k, n in sig)
    left = max(max(1, k + 1) for k, _ in sig)
    neg = int(any(v < 0 for v in finite))
    fixed_width = neg + left + (rgt + 1 if rgt else 0)
    mxsig = max(n for _, n in sig)
    sci_width = neg + (mxsig > 1) + (mxsig - 1) + 4 + (2 if max(abs(k) for k, _ in sig) >= 100 else 1)
    if fixed_width <= sci_width:
        return [f"{v:.{rgt}f}" if math.isfinite(v) else "" for v in x]
    return [f"{v:.{mxsig - 1}e}" if math.isfinite(v) else "" for v in x]


def _significant(v: float, digits: int) -> tuple[int, int]:
    """(decimal exponent, significant digits without trailing zeros) of ``v`` to ``digits``."""
    if v == 0:
        return 0, 1
    mantissa, exponent = f"{abs(v):.{digits - 1}e}".split("e")
    return int(exponent), len(mantissa.replace(".", "").rstrip("0")) or 1


def format_pvalues(p: np.ndarray, digits: int) -> list[str]:
    """R's ``format.pval(p, digits)`` (blank for NaN): below machine epsilon ``<2e-16``,
    fixed and scientific entries each formatted as a group."""
    out = ["" for _ in p]
    ok = [i for i, v in enumerate(p) if math.isfinite(v)]
    tiny = [i for i in ok if p[i] < EPS]
    rest = [i for i in ok if p[i] >= EPS]
    expo = {i: math.floor(math.log10(p[i])) if p[i] > 0 else -50 for i in rest}
    for group in ([i for i in rest if expo[i] >= -3], [i for i in rest if expo[i] < -3]):
        if group:
            for i, text in zip(group, r_format(p[group], digits), strict=True):
                out[i] = text
    if tiny:
        nc = max((len(out[i]) for i in rest), default=0)
        sep = "" if nc <= 6 else " "
        for i in tiny:
            out[i] = f"<{sep}{EPS:.0e}"
    return out


def _stars(p: float) -> str:
    for cut, mark in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p <= cut:
            return mark
    return ""
