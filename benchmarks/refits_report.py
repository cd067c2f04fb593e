"""The refit benchmark's tables: the peers side by side, and bootstrap percentiles
against the references as z-scores."""

from __future__ import annotations

import sys

import numpy as np
from refits_common import REF_NOTES


def quantile_se(x: np.ndarray, p: float, n: int, sd: float) -> float:
    """Standard error of the p-quantile of ``n`` draws from the law of ``x``:
    sqrt(p (1 - p) / n) / f(q_p). With 500 draws or more in ``x``, 1 / f(q_p) is the
    difference quotient of the empirical quantile function over p +- h (Siddiqui's
    estimate, h = min(0.4 p, 0.4 (1 - p), 0.05)); with fewer (lme4's short runs here) it is
    the normal density's with standard deviation ``sd`` (the reference's)."""
    x = np.asarray(x, float)
    if len(x) >= 500:
        h = min(0.4 * p, 0.4 * (1 - p), 0.05)
        lo, hi = np.quantile(x, [p - h, p + h])
        sparsity = (hi - lo) / (2 * h)
    else:
        z = stats_norm_ppf(p)
        sparsity = sd * np.sqrt(2 * np.pi) * np.exp(z * z / 2)
    return float(sparsity * np.sqrt(p * (1 - p) / n))


def stats_norm_ppf(p: float) -> float:
    from scipy.special import ndtri

    return float(ndtri(p))


def compare_quantiles(reps: np.ndarray, ref: dict, names: list[str]) -> list[dict]:
    """Per statistic (by position, as lme4's ``c(fixef(x), sdcor)``): our 2.5/50/97.5%
    percentiles, the reference's, and z = difference / sqrt(SE_ours^2 + SE_ref^2), both
    SEs from one density estimate (``quantile_se``), each with its own number of draws."""
    rows = []
    n_ref = int(ref["nsim"])
    k = min(reps.shape[1], len(ref["q50"]))
    if reps.shape[1] != len(ref["q50"]):
        print(
            f"bootstrap: {reps.shape[1]} statistics here, {len(ref['q50'])} in the reference; "
            f"the first {k} are compared by position",
            file=sys.stderr,
        )
    for j in range(k):
        x = reps[:, j]
        x = x[np.isfinite(x)]
        row = {"stat": names[j], "ref_stat": ref["stats"][j]}
        for p, key in ((0.025, "q025"), (0.5, "q50"), (0.975, "q975")):
            ours = float(np.quantile(x, p))
            sd_ref = ref["sd"][j]
            se = np.hypot(quantile_se(x, p, len(x), sd_ref), quantile_se(x, p, n_ref, sd_ref))
            row[key] = ours
            row[key + "_ref"] = ref[key][j]
            row[key + "_z"] = (ours - ref[key][j]) / se if se > 0 else float("nan")
        sd = float(np.std(x, ddof=1))
        row["sd"] = sd
        row["sd_ref"] = ref["sd"][j]
        row["mean_z"] = (float(np.mean(x)) - ref["mean"][j]) / (sd * np.sqrt(1 / len(x) + 1 / n_ref))
        rows.append(row)
    return rows


def print_quantiles(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print("\n| statistic | 2.5% | ref | z | 50% | ref | z | 97.5% | ref | z | mean z | sd / ref sd |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        cells = " | ".join(
            f"{r[k]:.4g} | {r[k + '_ref']:.4g} | {r[k + '_z']:+.2f}" for k in ("q025", "q50", "q975")
        )
        print(f"| {r['stat']} | {cells} | {r['mean_z']:+.2f} | {r['sd'] / r['sd_ref']:.3f} |")
    zs = [abs(r[k]) for r in rows for k in ("q025_z", "q50_z", "q975_z")]
    print(f"\nlargest |z| over the {len(zs)} percentiles: {max(zs):.2f}")


def fmt(v: float | None, digits: int = 4) -> str:
    if v is None:
        return "n/a"
    return f"{v:.{digits}g}"


def speedup(ml: float | None, peer: float | None, higher_better: bool) -> str:
    if ml is None or peer is None:
        return ""
    return f"{(ml / peer if higher_better else peer / ml):.1f}x"


def table(rows: list[tuple[str, float | None, float | None, float | None, bool, str]]) -> None:
    print("\nSpeed-up columns: how many times faster multilevel is than the peer (>1: faster).\n")
    print("| measure | multilevel | glmm | lme4 | vs glmm | vs lme4 | note |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, ml, gl, r, hb, note in rows:
        print(
            f"| {name} | {fmt(ml)} | {fmt(gl)} | {fmt(r)} | {speedup(ml, gl, hb)} | "
            f"{speedup(ml, r, hb)} | {note} |"
        )


def get(d: dict | None, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items() if k != "replicates"}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def rate(d: dict | None, n_key: str = "nsim") -> float | None:
    if not d or "seconds" not in d or d["seconds"] <= 0:
        return None
    return d[n_key] / d["seconds"]


def report(results: dict, refs: dict, n: dict) -> None:
    ff, r, g, ml = results["first_fit"], results["lme4"], results["glmm"], results["multilevel"]
    med = ff["medians"]
    rows = [
        (
            "first fit, fresh process, minus `import pandas` (s)",
            ff.get("multilevel_minus_pandas"),
            ff.get("glmm_minus_pandas"),
            None,
            False,
            f"medians of {ff['reps']} alternated processes",
        ),
        (
            "command line: `multilevel fit` vs `Rscript -e` lme4 (s)",
            med.get("cli"),
            None,
            med.get("rscript"),
            False,
            "whole process: start, load, read CSV, fit, print summary",
        ),
        (
            "warm fit, sleepstudy (ms)",
            1e3 * ml["warm"]["seconds"] if "seconds" in ml["warm"] else None,
            1e3 * g["warm_fit"] if g else None,
            1e3 * r["warm_fit"]["seconds"] if r else None,
            False,
            f"median of {n['warm_reps']} each (lme4 51), integer Subject as read from the CSV; after the "
            "kernels' tier-up",
        ),
        (
            "warm fit, sleepstudy, categorical Subject (ms)",
            1e3 * ml["warm"]["seconds_categorical"] if "seconds_categorical" in ml["warm"] else None,
            1e3 * g["warm_fit_categorical"] if g and "warm_fit_categorical" in g else None,
            None,
            False,
            f"median of {n['warm_reps']} each: Subject a pandas categorical of strings",
        ),
        (
            "warm fit, sleepstudy, interpreted tier (ms)",
            1e3 * ml["warm"]["numpy_tier_seconds"] if "numpy_tier_seconds" in ml["warm"] else None,
            None,
            None,
            False,
            "the same BFGS in batched NumPy: a process's first one-block fits",
        ),
        (
            "tier-up: the fit that starts the compiled kernels (s)",
            max(ml["warm"]["fresh_process_first_20"]) if "fresh_process_first_20" in ml["warm"] else None,
            None,
            None,
            False,
            "once per process: Numba's start and the kernels from its disk cache",
        ),
        (
            "refit, sleepstudy, new response (ms)",
            1e3 * ml["refit"]["seconds"] if "seconds" in ml["refit"] else None,
            None,
            1e3 * r["refit"]["seconds"] if r else None,
            False,
            "lme4 `refit(m, newy)` with its REML argument patched (tests/data/refits_refs.R)",
        ),
        (
            "parametric bootstrap, sleepstudy (replicates/s)",
            get(ml, "boot_sleepstudy", "per_second"),
            None,
            rate(get(r, "boot_sleepstudy")),
            True,
            f"multilevel n={n['boot']}; lme4 bootMer nsim={n['r_boot']}, rate extrapolated",
        ),
        (
            "parametric bootstrap, cbpp Laplace (replicates/s)",
            get(ml, "boot_cbpp", "per_second"),
            None,
            rate(get(r, "boot_cbpp")),
            True,
            f"multilevel n={n['boot_cbpp']}; lme4 bootMer nsim={n['r_cbpp']}",
        ),
        (
            "PB test of Days, sleepstudy (simulations/s)",
            get(ml, "pb", "per_second"),
            None,
            rate(get(r, "pb")),
            True,
            f"multilevel n={n['pb']}; pbkrtest PBmodcomp nsim={n['r_pb']} (two refits each)",
        ),
        (
            "fit_many, 60 rows, 20 groups (responses/s)",
            get(ml, "many", "per_second"),
            rate(g, "many_n") if g else None,
            rate(get(r, "many"), "n"),
            True,
            f"multilevel {n['many']} responses; glmm fit loop {n['glmm_many']}; "
            f"lme4 refit loop {n['r_many']}; rates extrapolated",
        ),
    ]
    table(rows)
    print(
        "\nfresh-process medians (s): "
        + ", ".join(f"{k} {v:.3f}" for k, v in med.items())
        + f"; the command line ran as `{ff['cli']}`"
    )
    for key, what in (("boot_sleepstudy", 2000), ("boot_cbpp", 1000)):
        lme4_rate = rate(get(r, key))
        if lme4_rate:
            print(f"\nlme4 {key}: {what} replicates would take {what / lme4_rate:.0f} s at its measured rate")
    for key, label in ml.items():
        if isinstance(label, dict) and ("skipped" in label or "failed" in label):
            print(f"\nmultilevel {key}: {label.get('skipped') or 'failed: ' + label['failed']}")

    # percentiles against the references
    for key, ref_keys, title in (
        (
            "boot_sleepstudy",
            ("sleepstudy_boot", "sleepstudy_boot_fixed"),
            "Bootstrap percentiles, sleepstudy REML",
        ),
        ("boot_cbpp", ("cbpp_boot",), "Bootstrap percentiles, cbpp Laplace"),
    ):
        mine = ml.get(key, {})
        for ref_key in ref_keys:
            ref = refs.get(ref_key)
            if ref is None or "replicates" not in mine:
                continue
            rows_q = compare_quantiles(mine["replicates"], ref, mine["columns"])
            mine[f"quantiles_vs_{ref_key}"] = rows_q
            print_quantiles(
                f"{title}: multilevel (n={mine['n']}) vs lme4's `{ref_key}` ({REF_NOTES[ref_key]}, "
                f"nsim={ref['nsim']})",
                rows_q,
            )
        if "replicates" in mine:
            print(f"failed replicates: {mine['n_failed']}, singular: {mine['n_singular']}")
        rb, ref = get(r, key), refs.get(ref_keys[-1])
        if rb and rb.get("t") and ref:
            t = np.asarray(rb["t"], float)
            rows_q = compare_quantiles(t, ref, [str(s) for s in rb["stats"]])
            rb["quantiles"] = rows_q
            print_quantiles(
                f"{title}: lme4 in this run (nsim={rb['nsim']}) vs `{ref_keys[-1]}` (a check of the harness)",
                rows_q,
            )
        if rb:
            rb.pop("t", None)

    # PB p-values
    print("\n| PB test of Days (sleepstudy) | draws | LRT statistic | PB p-value | seconds |")
    print("|---|---:|---:|---:|---:|")
    ref = refs.get("sleepstudy_pb_days")
    if ref:
        print(
            f"| pbkrtest reference | {ref['nsim']} | {ref['LRT_stat']:.6f} | {ref['p_PB']:.6g} | "
            f"{ref['seconds']:.1f} |"
        )
    if get(r, "pb"):
        p = r["pb"]
        print(
            f"| pbkrtest, this run | {p['nsim']} | {p['stat']:.6f} | {p['p_PB']:.6g} | {p['seconds']:.2f} |"
        )
    p = ml.get("pb", {})
    if "seconds" in p:
        print(f"| multilevel | {p['n']} | | {fmt(p['p_PB'], 6)} | {p['seconds']:.2f} |")
        print(f"\nmultilevel's table:\n{p['table']}")
    if ref:
        print(
            "(floor of a PB p-value from n draws: 1 / (n + 1); "
            f"the observed LRT {ref['LRT_stat']:.2f} is never reached)"
        )

    # refit and fit_many checks
    rf = ml.get("refit", {})
    if "criterion_rel_diff" in rf:
        print(
            f"\nrefit sleepstudy: REML criterion {rf['criterion']:.8f}, lme4's {rf['criterion_ref']:.8f} "
            f"(relative {rf['criterion_rel_diff']:+.2e})"
        )
    if "cbpp" in rf:
        c = rf["cbpp"]
        print(
            f"refit cbpp ({c['response']}): logLik {c['loglik']:.8f}, "
            f"lme4 tight {c['loglik_ref_tight']:.8f}, "
            f"default {c['loglik_ref_default']:.8f}"
        )
    mm = ml.get("many", {})
    if "n" in mm:
        print(
            f"\nfit_many: {mm['n']} responses in {mm['seconds']:.2f} s "
            f"(responses passed as {mm['responses_as']}); "
            f"a loop of fit(): {mm['fit_loop_per_second']:.0f}/s"
            + (
                f", a loop of refit(): {mm['refit_loop_per_second']:.0f}/s"
                if "refit_loop_per_second" in mm
                else ""
            )
        )
        print(f"fit_many's columns: {mm['columns']}")
        if "check_max_rel" in mm:
            verdict = "PASS" if mm["check_pass"] else "FAIL"
            print(
                f"check, {mm['check_n']} random responses against their own fit(): largest relative "
                f"difference of the REML criterion {mm['check_max_rel']:.2e} ({verdict}, bound 1e-8)"
            )
        else:
            print(f"check: {mm.get('check')}")
        if mm.get("criterion") is not None and get(r, "many"):
            k = r["many"]["n"]
            theirs = np.asarray(r["many"]["criterion"], float)
            diff = (np.asarray(mm["criterion"][:k]) - theirs) / np.abs(theirs)
            print(
                f"against lme4's refit loop on the first {k} responses: "
                "REML criterion (ours - lme4's) / lme4's "
                f"from {diff.min():+.2e} to {diff.max():+.2e}"
            )
    if get(r, "many"):
        r["many"].pop("criterion", None)
    if g:
        g.pop("many_criterion", None)
