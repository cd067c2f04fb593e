"""What users see of a GEE fit: the estimate record plus its summary and JSON record."""

from __future__ import annotations

import numpy as np

from ..marginal.results import GeeResult
from ..marginal.variance import METHODS


class GeeFit(GeeResult):
    """A fitted GEE, as :func:`multilevel.gee` returns it.

    Examples
    --------
    >>> import multilevel
    >>> g = multilevel.gee("y ~ arm + x", multilevel.load_dataset("crt10"), groups="cluster",
    ...                    family="binomial")
    >>> print(g.summary().splitlines()[0])
    Generalized estimating equations (binomial, logit link)
    """

    def summary(self) -> str:
        from .text import _pval, _stars, _table

        sizes = self.cluster_sizes
        lines = [
            f"Generalized estimating equations ({self.family.name}, {self.family.link.name} link)",
            f"Formula: {self.formula}",
            f"Clusters: {self.groups}, {self.n_clusters} clusters; sizes min {sizes.min()}, "
            f"median {int(np.median(sizes))}, max {sizes.max()}; {self.nobs} observations",
            f"Working correlation: {self.corr.describe()}"
            + (f", alpha = {', '.join(f'{a:.4g}' for a in self.alpha)}" if self.alpha.size else ""),
            f"Scale: {self.scale:.6g}   QIC: {self.qic:.2f}",
            f"Standard errors: {self.se_method} ({self.se_reason})",
        ]
        if self.n_missing:
            lines.append(f"({self.n_missing} rows with missing values were dropped)")
        lines.append("")
        ct = self.coef_table
        stat_col, p_col = ct.columns[2], ct.columns[3]
        rows = [["", "Estimate", "Std. Error", stat_col, p_col, "", "2.5 %", "97.5 %"]]
        for name, r in ct.iterrows():
            pv = float(r[p_col])
            rows.append(
                [
                    str(name),
                    f"{r['Estimate']:.5g}",
                    f"{r['Std. Error']:.4g}",
                    f"{r[stat_col]:.3f}",
                    _pval(pv),
                    _stars(pv),
                    f"{r['2.5 %']:.4g}",
                    f"{r['97.5 %']:.4g}",
                ]
            )
        lines += _table(rows, ["l", "r", "r", "r", "r", "l", "r", "r"])
        lines.append("")
        lines.append("Standard errors by method:")
        se = self.se_all
        rows = [["", *se.columns]] + [[str(i), *(f"{v:.4g}" for v in row)] for i, row in se.iterrows()]
        lines += _table(rows, ["l"] + ["r"] * se.shape[1])
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict:
        from .text import clean

        ct = self.coef_table
        return {
            "model": "gee",
            "formula": self.formula,
            "family": self.family.name,
            "link": self.family.link.name,
            "corstr": self.corr.name,
            "alpha": [float(a) for a in self.alpha],
            "scale": self.scale,
            "n_clusters": self.n_clusters,
            "cluster_sizes": {"min": int(self.cluster_sizes.min()), "max": int(self.cluster_sizes.max())},
            "nobs": self.nobs,
            "se_method": self.se_method,
            "se_reason": self.se_reason,
            "df": clean(self.df),
            "qic": self.qic,
            "coef": {str(k): {c: clean(float(v)) for c, v in r.items()} for k, r in ct.iterrows()},
            "se_all": {m: {str(k): float(v) for k, v in self.se_all[m].items()} for m in METHODS},
            "converged": self.estimate.converged,
        }
