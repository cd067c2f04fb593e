"""Plain-text pieces shared by the summaries of every fit."""

from __future__ import annotations

from typing import Any

import numpy as np


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


def random_effects_lines(fit: Any) -> list[str]:
    """The 'Random effects:' table, groups line and missing-data note, as lme4 prints them."""
    lines = ["Random effects:"]
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
    res = fit._residual_row
    if res is not None:
        rows.append(["Residual", "", f"{res[0]:.4g}", f"{res[1]:.4g}", ""])
    lines += _table(rows, ["l", "l", "r", "r", "l"])
    if fit.spec.parsed.se is not None:
        lines.append(f"Residual SDs known: se({fit.spec.parsed.se})")
    groups = ", ".join(f"{k}, {v}" for k, v in fit.ngroups.items())
    lines.append(f"Number of obs: {fit.nobs}, groups:  {groups}")
    if fit.spec.n_missing:
        lines.append(f"({fit.spec.n_missing} rows with missing values were dropped)")
    return lines


def footer_lines(fit: Any) -> list[str]:
    """Significance codes, dropped columns, the optimizer record and the fit's notes."""
    lines = ["---", "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"]
    if fit.spec.dropped_fixed:
        lines.append(f"fixed-effect columns dropped (rank deficient): {', '.join(fit.spec.dropped_fixed)}")
    opt = fit.optinfo
    lines.append(
        f"optimizer: {opt.optimizer}, {opt.n_evals} evaluations, {opt.seconds:.3f} s, "
        f"{'converged' if opt.converged else 'NOT CONVERGED'}"
    )
    lines += [f"note: {m}" for m in fit.messages]
    return lines


def clean(x: Any) -> Any:
    """JSON-safe scalar: numpy types to Python, non-finite floats to None."""
    import math

    if isinstance(x, (np.floating,)):
        x = float(x)
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def common_dict(fit: Any) -> dict:
    """The parts of ``to_dict()`` every mixed-model fit shares."""
    return {
        "formula": fit.spec.formula,
        "nobs": fit.nobs,
        "n_missing_dropped": fit.spec.n_missing,
        "ngroups": fit.ngroups,
        "dropped_fixed": list(fit.spec.dropped_fixed),
        "varcorr": [{k: clean(v) for k, v in rec.items()} for rec in fit.varcorr.to_dict("records")],
        "theta": [float(t) for t in fit.theta],
        "theta_names": list(fit.spec.theta_names),
        "loglik": fit.loglik,
        "deviance": fit.deviance,
        "aic": fit.aic,
        "bic": fit.bic,
        "converged": fit.converged,
        "singular": fit.singular,
        "messages": list(fit.messages),
        "optimizer": fit.optinfo.to_dict(),
        "ranef": ranef_dict(fit),
    }


def ranef_dict(fit: Any) -> dict:
    """The conditional modes by grouping factor: levels, terms and values."""
    return {
        name: {
            "levels": [str(i) for i in df.index],
            "terms": list(df.columns),
            "condval": df.to_numpy().tolist(),
        }
        for name, df in fit.ranef.items()
    }


def abbreviate(name: str, minlength: int = 6) -> str:
    """R's ``abbreviate()`` as lme4 uses it for the correlation table's columns: drop
    lower-case vowels from the right, then lower-case letters, never the first
    character, until ``minlength`` characters are left (``"(Intercept)"`` -> ``"(Intr)"``)."""
    chars = list(name)
    for drop in ("aeiou", "abcdefghijklmnopqrstuvwxyz"):
        i = len(chars) - 1
        while len(chars) > minlength and i > 0:
            if chars[i] in drop:
                del chars[i]
            i -= 1
    return "".join(chars[:minlength]) if len(chars) > minlength else "".join(chars)


CORRELATION_MAX_P = 12  # lme4 prints the correlation of fixed effects up to this many


def fixef_correlation_lines(fit: Any) -> list[str]:
    """lme4's "Correlation of Fixed Effects" block: the lower triangle to 3 decimals."""
    V = fit.vcov.to_numpy()
    names = [str(n) for n in fit.vcov.index]
    p = len(names)
    if p < 2:
        return []
    if p > CORRELATION_MAX_P:
        return ["", f"Correlation matrix not shown by default, as p = {p} > {CORRELATION_MAX_P}; see vcov."]
    sd = np.sqrt(np.maximum(np.diag(V), 0.0))
    with np.errstate(invalid="ignore", divide="ignore"):
        R = V / np.outer(sd, sd)
    rows = [["", *(abbreviate(n) for n in names[:-1])]]
    for i in range(1, p):
        rows.append([names[i], *(f"{R[i, j]:.3f}" for j in range(i)), *([""] * (p - 1 - i))])
    return ["", "Correlation of Fixed Effects:", *_table(rows, ["l"] + ["r"] * (p - 1))]
