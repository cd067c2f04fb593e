"""Text summary (as lme4 + lmerTest print it) and plain-data export of an LMM fit."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from .results import LmmFit


def _pval(p: float) -> str:
    if p < 2e-16:
        return "< 2e-16"
    return f"{p:.3g}" if p >= 1e-4 else f"{p:.2e}"


def _stars(p: float) -> str:
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else "." if p < 0.1 else ""


def _table(rows: list[list[str]], align: list[str]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    out = []
    for r in rows:
        cells = [c.ljust(w) if a == "l" else c.rjust(w) for c, w, a in zip(r, widths, align)]
        out.append(" " + " ".join(cells).rstrip())
    return out


def format_summary(fit: LmmFit) -> str:
    lines = []
    method = "REML" if fit.reml else "maximum likelihood"
    lines.append(f"Linear mixed model fit by {method}. t-tests use Satterthwaite's method")
    lines.append(f"Formula: {fit.spec.formula}")
    lines.append("")
    if fit.reml:
        lines.append(f"REML criterion at convergence: {fit.reml_criterion:.1f}")
    else:
        lines.append("     AIC      BIC   logLik deviance")
        lines.append(f" {fit.aic:8.1f} {fit.bic:8.1f} {fit.loglik:8.1f} {fit.deviance:8.1f}")
    lines.append("")
    r = fit.residuals / fit.sigma
    if fit.design.weights is not None:
        r = r * np.sqrt(fit.design.weights)
    q = np.quantile(r, [0, 0.25, 0.5, 0.75, 1])
    lines.append("Scaled residuals:")
    lines += _table([["Min", "1Q", "Median", "3Q", "Max"], [f"{v:.4f}" for v in q]], ["r"] * 5)
    lines.append("")
    lines.append("Random effects:")
    rows = [["Groups", "Name", "Variance", "Std.Dev.", "Corr"]]
    for g in fit.spec.groupings:
        S = fit.covariances[g.name].to_numpy()
        sd = np.sqrt(np.maximum(np.diag(S), 0))
        first = True
        for t in g.terms:
            for i in range(t.offset, t.offset + t.q):
                corr = []
                for j in range(t.offset, i):
                    c = S[i, j] / (sd[i] * sd[j]) if sd[i] * sd[j] > 0 else float("nan")
                    corr.append(f"{c:5.2f}")
                rows.append(
                    [g.name if first else "", g.columns[i], f"{S[i, i]:.4g}", f"{sd[i]:.4g}", " ".join(corr)]
                )
                first = False
    rows.append(["Residual", "", f"{fit.sigma**2:.4g}", f"{fit.sigma:.4g}", ""])
    lines += _table(rows, ["l", "l", "r", "r", "l"])
    groups = ", ".join(f"{k}, {v}" for k, v in fit.ngroups.items())
    lines.append(f"Number of obs: {fit.nobs}, groups:  {groups}")
    if fit.spec.n_missing:
        lines.append(f"({fit.spec.n_missing} rows with missing values were dropped)")
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
    lines.append("---")
    lines.append("Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1")
    if fit.spec.dropped_fixed:
        lines.append(f"fixed-effect columns dropped (rank deficient): {', '.join(fit.spec.dropped_fixed)}")
    opt = fit.optinfo
    lines.append(
        f"optimizer: {opt.optimizer}, {opt.n_evals} evaluations, {opt.seconds:.3f} s, "
        f"{'converged' if opt.converged else 'NOT CONVERGED'}"
    )
    for m in fit.messages:
        lines.append(f"note: {m}")
    return "\n".join(lines)


def _clean(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, (np.floating,)):
        return _clean(float(x))
    if isinstance(x, (np.integer,)):
        return int(x)
    return x


def fit_to_dict(fit: LmmFit) -> dict:
    ct = fit.coef_table
    vc = fit.varcorr
    return {
        "model": "lmm",
        "formula": fit.spec.formula,
        "family": fit.spec.family,
        "method": "REML" if fit.reml else "ML",
        "nobs": fit.nobs,
        "n_missing_dropped": fit.spec.n_missing,
        "ngroups": fit.ngroups,
        "fixef": {
            str(k): {
                "estimate": _clean(float(r["Estimate"])),
                "se": _clean(float(r["Std. Error"])),
                "df": _clean(float(r["df"])),
                "t": _clean(float(r["t value"])),
                "p": _clean(float(r["Pr(>|t|)"])),
            }
            for k, r in ct.iterrows()
        },
        "dropped_fixed": list(fit.spec.dropped_fixed),
        "varcorr": [{k: _clean(v) for k, v in rec.items()} for rec in vc.to_dict("records")],
        "sigma": fit.sigma,
        "theta": [float(t) for t in fit.theta],
        "theta_names": list(fit.spec.theta_names),
        "loglik": fit.loglik,
        "deviance": fit.deviance,
        "reml_criterion": fit.reml_criterion,
        "aic": fit.aic,
        "bic": fit.bic,
        "converged": fit.converged,
        "singular": fit.singular,
        "messages": list(fit.messages),
        "optimizer": fit.optinfo.to_dict(),
        "ranef": {
            name: {
                "levels": [str(i) for i in df.index],
                "terms": list(df.columns),
                "condval": df.to_numpy().tolist(),
            }
            for name, df in fit.ranef.items()
        },
    }
