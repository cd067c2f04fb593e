"""Text summary (as lme4's ``summary(glmer)``) and plain-data export of a GLMM fit."""

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
    from .glmm_fit import GlmmFit


def _method(fit: GlmmFit) -> str:
    if fit.nagq == 0:
        return fit.approximation
    what = ["Laplace approximation" if fit.nagq == 1 else "adaptive Gauss-Hermite quadrature"]
    if fit.nagq > 1:
        what.append(f"nagq = {fit.nagq}")
    if not fit.family.canonical:
        what.append(f"{fit.laplace} information")
    return f"maximum likelihood ({', '.join(what)})"


def format_glmm_summary(fit: GlmmFit) -> str:
    fam = fit.family
    lines = [
        f"Generalized linear mixed model fit by {_method(fit)}",
        f" Family: {fam.name}  ( {fam.link.name} )",
        f"Formula: {fit.spec.formula}",
        f"   Data: {fit.spec.data_name}",
        "",
        "     AIC      BIC   logLik deviance df.resid",
        f" {fit.aic:8.1f} {fit.bic:8.1f} {fit.loglik:8.1f} {fit.deviance:8.1f} {fit.nobs - fit.n_params:8d}",
        "",
    ]
    if getattr(fit.design, "remote", False):
        lines.append("Scaled residuals: not kept (the rows live on the cluster)")
    else:
        mu = fit.fitted
        var = fam.variance(mu, fit.estimate.disp) / fit.problem.w0
        r = (fit.problem.y - mu) / np.sqrt(var)
        q = np.quantile(r, [0, 0.25, 0.5, 0.75, 1])
        lines.append("Scaled residuals:")
        lines += _table([["Min", "1Q", "Median", "3Q", "Max"], [f"{v:.4f}" for v in q]], ["r"] * 5)
    lines.append("")
    lines += random_effects_lines(fit)
    if fit.dispersion is not None and not fam.residual_row:
        lines.append(f"{fam.name} {fam.dispersion_label} parameter: {fit.dispersion:.4g}")
    lines.append("")
    lines.append("Fixed effects:")
    rows = [["", "Estimate", "Std. Error", "z value", "Pr(>|z|)", ""]]
    for name, rec in fit.coef_table.iterrows():
        p = float(rec["Pr(>|z|)"])
        rows.append(
            [
                str(name),
                f"{rec['Estimate']:.5g}",
                f"{rec['Std. Error']:.4g}",
                f"{rec['z value']:.3f}",
                _pval(p),
                _stars(p),
            ]
        )
    lines += _table(rows, ["l", "r", "r", "r", "r", "l"])
    lines.append(
        f"deviance = -2 logLik = {fit.deviance:.4f}; lme4's deviance() (sum of squared deviance "
        f"residuals) = {fit.deviance_residual_sum:.4f}"
    )
    lines += footer_lines(fit)
    lines += fixef_correlation_lines(fit)
    return "\n".join(lines)


def glmm_to_dict(fit: GlmmFit) -> dict:
    out: dict[str, Any] = {
        "model": "glmm",
        "family": fit.family.name,
        "link": fit.family.link.name,
        "method": "Laplace" if fit.nagq == 1 else f"AGQ({fit.nagq})" if fit.nagq > 1 else "PIRLS",
        "approximation": fit.approximation,
        "laplace": fit.laplace,
    }
    out.update(common_dict(fit))
    out["fixef"] = {
        str(k): {
            "estimate": clean(float(r["Estimate"])),
            "se": clean(float(r["Std. Error"])),
            "z": clean(float(r["z value"])),
            "p": clean(float(r["Pr(>|z|)"])),
        }
        for k, r in fit.coef_table.iterrows()
    }
    out["dispersion"] = fit.dispersion
    out["deviance_residual_sum"] = fit.deviance_residual_sum
    return out
