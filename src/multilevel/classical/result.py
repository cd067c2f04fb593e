"""The record of an ``aov`` fit and its text form (R's ``summary(aov)`` layout)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import pandas as pd

TABLE_COLUMNS = ("Df", "Sum Sq", "Mean Sq", "F value", "Pr(>F)")


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
        from .text import format_aov

        return format_aov(self)


def _num(v: float) -> str:
    return f"{v:.6g}"


def _plain(v: Any) -> Any:
    v = float(v)
    return None if math.isnan(v) else v
