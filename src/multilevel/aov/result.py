"""The record of an ``aov`` fit and its text form (R's ``summary(aov)`` layout)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

TABLE_COLUMNS = ("Df", "Sum Sq", "Mean Sq", "F value", "Pr(>F)")
SIGNIF = "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"


@dataclass(frozen=True)
class AovResult:
    """Classical ANOVA of a designed experiment with ``Error()`` strata.

    Attributes
    ----------
    formula : the formula as given.
    n : rows used.
    strata : stratum name -> table (index: term, then ``"Residuals"``; columns
        ``Df``, ``Sum Sq``, ``Mean Sq``, ``F value``, ``Pr(>F)``; F and p NaN on the
        residual row), coarsest stratum first, ``"Within"`` last.
    ems : one row per stratum with residual df: ``df``, ``MS`` and the coefficient of
        each variance component in ``E[MS]``.
    components : one row per variance component (each error term, then
        ``"Residual"``): ``estimate`` (method of moments, negative values kept),
        ``negative``, Satterthwaite ``df``, ``lower``, ``upper`` (NaN where the
        estimate is not positive), and ``reml``: REML's estimate, which keeps each
        component at 0 or above (NaN where it was not computed).
    balanced : equal replication in every cell of every term; when False the moment
        estimates depend on the order of the sums of squares (not unique).
    negative : the components whose moment estimate is negative.
    level : the confidence level of the intervals.
    notes : statements about the fit (unbalanced data, negative estimates, ...).
    """

    formula: str
    n: int
    strata: dict[str, pd.DataFrame]
    ems: pd.DataFrame
    components: pd.DataFrame
    balanced: bool
    negative: tuple[str, ...]
    level: float
    notes: tuple[str, ...]

    @property
    def estimates(self) -> dict[str, float]:
        """The moment estimates of the variance components, by name."""
        return {str(k): float(v) for k, v in self.components["estimate"].items()}

    def expressions(self) -> list[str]:
        """``E[MS_stratum] = c_1 sigma2_1 + ...`` for every row of :attr:`ems`."""
        out = []
        names = [c for c in self.ems.columns if c not in ("df", "MS")]
        for stratum, row in self.ems.iterrows():
            parts = [f"{_num(row[c])} sigma2_{c}" for c in names if abs(row[c]) > 1e-12]
            out.append(f"E[MS_{stratum}] = {' + '.join(parts)}")
        return out

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values (NaN as None), keyed as the reference files are."""
        strata = {
            name: [
                {
                    "term": str(term),
                    "Df": int(row["Df"]),
                    "SumSq": _plain(row["Sum Sq"]),
                    "MeanSq": _plain(row["Mean Sq"]),
                    "F": _plain(row["F value"]),
                    "p": _plain(row["Pr(>F)"]),
                }
                for term, row in table.iterrows()
            ]
            for name, table in self.strata.items()
        }
        names = [c for c in self.ems.columns if c not in ("df", "MS")]
        ems_rows = [
            {
                "stratum": str(s),
                "df": int(r["df"]),
                "MS": _plain(r["MS"]),
                "coef": {c: _plain(r[c]) for c in names},
            }
            for s, r in self.ems.iterrows()
        ]
        comps = {
            str(k): {
                "estimate": _plain(r["estimate"]),
                "negative": bool(r["negative"]),
                "df": _plain(r["df"]),
                "lower": _plain(r["lower"]),
                "upper": _plain(r["upper"]),
                "reml": _plain(r["reml"]),
            }
            for k, r in self.components.iterrows()
        }
        return {
            "formula": self.formula,
            "n": self.n,
            "balanced": self.balanced,
            "strata": strata,
            "ems": {"components": names, "rows": ems_rows, "expressions": self.expressions()},
            "components": comps,
            "anova_estimates": self.estimates,
            "reml_estimates": {k: v["reml"] for k, v in comps.items()},
            "negative": list(self.negative),
            "level": self.level,
            "notes": list(self.notes),
        }

    def __str__(self) -> str:
        return format_aov(self)


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
    if any(np.nanmin(t["Pr(>F)"].to_numpy(dtype=float), initial=1.0) < 0.1 for t in result.strata.values()):
        out += f"\n---\n{SIGNIF}"
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
    cols: dict[str, list[str]] = {"": [str(t) for t in table.index]}
    cols["Df"] = [str(int(v)) for v in table["Df"]]
    for c in ("Sum Sq", "Mean Sq", "F value"):
        cols[c] = _fixed(table[c].to_numpy(dtype=float))
    p = table["Pr(>F)"].to_numpy(dtype=float)
    cols["Pr(>F)"] = ["" if math.isnan(v) else ("<2e-16" if v < 2e-16 else f"{v:.3g}") for v in p]
    stars = ["" if math.isnan(v) else _stars(v) for v in p]
    widths = {c: max(len(c), *(len(v) for v in vals)) for c, vals in cols.items()}
    lines = [" ".join(c.ljust(widths[c]) if c == "" else c.rjust(widths[c]) for c in cols).rstrip()]
    for i in range(len(table)):
        cells = [cols[c][i].ljust(widths[c]) if c == "" else cols[c][i].rjust(widths[c]) for c in cols]
        lines.append((" ".join(cells) + (" " + stars[i] if stars[i] else "")).rstrip())
    return "\n".join(lines)


def _fixed(values: np.ndarray, digits: int = 4) -> list[str]:
    """Fixed decimals for a column: ``digits`` significant figures on its largest entry."""
    finite = values[np.isfinite(values)]
    top = float(np.max(np.abs(finite))) if finite.size else 0.0
    decimals = 0 if top == 0 else max(0, min(8, digits - 1 - math.floor(math.log10(top))))
    return ["" if not math.isfinite(v) else f"{v:.{decimals}f}" for v in values]


def _stars(p: float) -> str:
    for cut, mark in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p < cut:
            return mark
    return ""


def _num(v: float) -> str:
    return f"{v:.6g}"


def _plain(v: Any) -> Any:
    v = float(v)
    return None if math.isnan(v) else v
