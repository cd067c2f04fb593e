"""Text summary (as lme4 + lmerTest print it) and plain-data export of an LMM fit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .text import (
    _pval,
    _stars,
    _table,
    clean,
    common_dict,
    fixef_correlation_lines,
    footer_lines,
    random_effects_lines,
)

if TYPE_CHECKING:
    from .lmm_fit import LmmFit


def format_summary(fit: LmmFit) -> str:
    lines = []
    method = "REML" if fit.reml else "maximum likelihood"
    lines.append(f"Linear mixed model fit by {method}. t-tests use Satterthwaite's method")
    lines.append(f"Formula: {fit.spec.formula}")
    lines.append(f"   Data: {fit.spec.data_name}")
    lines.append("")
    if fit.reml:
        lines.append(f"REML criterion at convergence: {fit.reml_criterion:.1f}")
    else:
        lines.append("     AIC      BIC   logLik deviance")
        lines.append(f" {fit.aic:8.1f} {fit.bic:8.1f} {fit.loglik:8.1f} {fit.deviance:8.1f}")
    lines.append("")
    if getattr(fit.design, "remote", False):
        lines.append("Scaled residuals: not kept (the rows live on the cluster)")
    else:
        r = fit.residuals / fit.sigma
        rw = fit.design.residual_weights
        if rw is not None:
            r = r * np.sqrt(rw)
        q = np.quantile(r, [0, 0.25, 0.5, 0.75, 1])
        lines.append("Scaled residuals:")
        lines += _table([["Min", "1Q", "Median", "3Q", "Max"], [f"{v:.4f}" for v in q]], ["r"] * 5)
    lines.append("")
    lines += random_effects_lines(fit)
    lines.append("")
    lines.append("Fixed effects:")
    ct = fit.coef_table
    rows = [["", "Estimate", "Std. Error", "df", "t value", "Pr(>|t|)", ""]]
    for name, rec in ct.iterrows():
        p = float(rec["Pr(>|t|)"])
        rows.append(
            [
                str(name),
                f"{rec['Estimate']:.5g}",
                f"{rec['Std. Error']:.4g}",
                f"{rec['df']:.2f}",
                f"{rec['t value']:.3f}",
                _pval(p),
                _stars(p),
            ]
        )
    lines += _table(rows, ["l", "r", "r", "r", "r", "r", "l"])
    lines += footer_lines(fit)
    lines += fixef_correlation_lines(fit)
    return "\n".join(lines)


def fit_to_dict(fit: LmmFit) -> dict:
    ct = fit.coef_table
    out: dict[str, Any] = {"model": "lmm", "family": fit.spec.family, "method": "REML" if fit.reml else "ML"}
    out.update(common_dict(fit))
    out["fixef"] = {
        str(k): {
            "estimate": clean(float(r["Estimate"])),
            "se": clean(float(r["Std. Error"])),
            "df": clean(float(r["df"])),
            "t": clean(float(r["t value"])),
            "p": clean(float(r["Pr(>|t|)"])),
        }
        for k, r in ct.iterrows()
    }
    out["sigma"] = fit.sigma
    out["reml_criterion"] = fit.reml_criterion
    return out
