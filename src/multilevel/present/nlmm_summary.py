"""Text summary (as lme4's ``summary(nlmer)``) and plain-data export of a nonlinear
mixed-model fit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .text import _pval, _stars, _table, clean, ranef_dict

if TYPE_CHECKING:
    from .nlmm_fit import NlmmFit


def _random_lines(fit: NlmmFit) -> list[str]:
    rows = [["Groups", "Name", "Variance", "Std.Dev.", "Corr"]]
    vc = fit.varcorr
    recs: list[dict[Any, Any]] = vc.to_dict("records")
    last = None
    for rec in recs:
        if rec["term2"] is not None or rec["group"] == "Residual":
            continue
        corr = [c["sd_or_corr"] for c in recs if c["group"] == rec["group"] and c["term2"] == rec["term1"]]
        rows.append(
            [
                str(rec["group"]) if rec["group"] != last else "",
                str(rec["term1"]),
                f"{rec['variance']:.4g}",
                f"{rec['sd_or_corr']:.4g}",
                " ".join(f"{c:5.2f}" for c in corr),
            ]
        )
        last = rec["group"]
    if fit.problem.gaussian:
        rows.append(["Residual", "", f"{fit.sigma**2:.4g}", f"{fit.sigma:.4g}", ""])
    lines = ["Random effects:", *_table(rows, ["l", "l", "r", "r", "l"])]
    groups = ", ".join(f"{k}, {v}" for k, v in fit.ngroups.items())
    lines.append(f"Number of obs: {fit.nobs}, groups:  {groups}")
    if fit.n_missing:
        lines.append(f"({fit.n_missing} rows with missing values were dropped)")
    return lines


def format_nlmm_summary(fit: NlmmFit) -> str:
    lines = [
        f"Nonlinear mixed model fit by maximum likelihood ({fit.method})",
        *([] if fit.problem.gaussian else [f" Family: {fit.family}"]),
        f"Formula: {fit.formula}",
        *(f"   {name}: {f}" for name, f in fit.params.items()),
        f"   Data: {fit.problem.data_name}",
        "",
        "     AIC      BIC   logLik deviance df.resid",
        f" {fit.aic:8.1f} {fit.bic:8.1f} {fit.loglik:8.1f} {fit.deviance:8.1f} {fit.nobs - fit.n_params:8d}",
        "",
    ]
    r = fit.pearson_residuals
    q = np.quantile(r, [0, 0.25, 0.5, 0.75, 1])
    lines.append("Scaled residuals:")
    lines += _table([["Min", "1Q", "Median", "3Q", "Max"], [f"{v:.4f}" for v in q]], ["r"] * 5)
    lines.append("")
    lines += _random_lines(fit)
    lines += ["", "Fixed effects:"]
    rows = [["", "Estimate", "Std. Error", "z value", "Pr(>|z|)", ""]]
    for name, rec in fit.coef_table.iterrows():
        p = float(rec["Pr(>|z|)"])
        rows.append(
            [
                str(name),
                f"{rec['Estimate']:.6g}",
                f"{rec['Std. Error']:.4g}",
                f"{rec['z value']:.3f}",
                _pval(p),
                _stars(p),
            ]
        )
    lines += _table(rows, ["l", "r", "r", "r", "r", "l"])
    lines += ["---", "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"]
    opt = fit.optinfo
    lines.append(
        f"optimizer: {opt.optimizer}, {opt.n_evals} evaluations, {opt.seconds:.3f} s, "
        f"{'converged' if fit.converged else 'NOT CONVERGED'}"
    )
    lines += [f"note: {m}" for m in (*opt.messages, *fit.messages)]
    return "\n".join(lines)


def nlmm_to_dict(fit: NlmmFit) -> dict:
    out: dict[str, Any] = {
        "formula": fit.formula,
        "params": fit.params,
        "method": fit.method,
        "nagq": fit.nagq,
        "nobs": fit.nobs,
        "n_missing_dropped": fit.n_missing,
        "ngroups": fit.ngroups,
        "fixef": {k: clean(v) for k, v in fit.fixef.items()},
        "se": {k: clean(v) for k, v in fit.se.items()},
        "varcorr": [{k: clean(v) for k, v in rec.items()} for rec in fit.varcorr.to_dict("records")],
        "theta": [float(t) for t in fit.theta],
        "theta_names": list(fit.problem.theta_names),
        "family": fit.family,
        "sigma": clean(fit.sigma),
        "loglik": clean(fit.loglik),
        "deviance": clean(fit.deviance),
        "aic": clean(fit.aic),
        "bic": clean(fit.bic),
        "converged": fit.converged,
        "singular": fit.singular,
        "optimizer": fit.optinfo.to_dict(),
        "ranef": ranef_dict(fit),
    }
    return out
