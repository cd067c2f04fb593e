"""Refits, parametric bootstrap, many responses and the first call: multilevel against
`glmm` and lme4 (one Rscript call for all of lme4's warm work), side by side in one run.

1. First fit of sleepstudy in a fresh process: ``python -c "import pandas, multilevel;
   ...fit..."`` minus ``python -c "import pandas"`` (and the same for `glmm`), and the
   command line ``multilevel fit <csv> <formula>`` against ``Rscript -e`` loading lme4,
   reading the CSV, fitting and printing the summary; medians of alternated fresh
   processes.
2. Warm fit of sleepstudy, and ``fit.refit(y)`` against lme4's ``refit(m, y)``.
3. Parametric bootstrap of sleepstudy (REML, ``Reaction ~ Days + (Days | Subject)``):
   replicates per second against ``bootMer(type = "parametric")``, and multilevel's
   2.5/50/97.5% percentiles against ``../shared/reference/lme4_inference.json``
   (``sleepstudy_boot``, 2,000 replicates) as z-scores over both Monte Carlo errors.
4. The same for cbpp (binomial, Laplace), against ``tests/data/refits_refs.json``.
5. ``anova(m0, m1, test="PB")`` for the Days effect against pbkrtest's ``PBmodcomp``.
6. ``fit_many`` on many responses of one 60-row design (20 groups of 3, ``y ~ x + (1 | g)``)
   against lme4's ``refit`` loop and a `glmm` fit loop, with a check that 50 random
   responses equal their own ``multilevel.fit()`` in the REML criterion.

lme4's and `glmm`'s loops run fewer replicates or responses than multilevel; their rates
are extrapolated (the table says from how many). The peers run from
``refits_peers.py``, the tables print from ``refits_report.py``.

    python benchmarks/bench_refits.py [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from common import timed
from refits_common import (
    CBPP,
    DATASETS,
    HERE,
    MANY,
    SLEEP,
    SLEEP0,
    SLEEP_CSV,
    has_param,
    load_refs,
    many_responses,
    missing,
    quiet,
    response_names,
)
from refits_peers import first_fit, run_glmm, run_lme4
from refits_report import get, jsonable, report

import multilevel

TIER_SCRIPT = """
import json, time, warnings, pandas as pd, multilevel
warnings.simplefilter("ignore")
d = pd.read_csv({path!r})
ts = []
for _ in range(20):
    t0 = time.perf_counter(); multilevel.fit({formula!r}, d); ts.append(time.perf_counter() - t0)
print(json.dumps(ts))
"""


def ml_warm(reps: int) -> dict:
    """Warm fits in the steady state (after the one-block kernels' tier-up), in the
    interpreted tier (a process's first fits), and the first 20 fits of a fresh process."""
    from multilevel.control import FitControl
    from multilevel.linalg.one_block_compiled import HOT_FITS

    path = Path(multilevel.__file__).parent / "datasets" / "sleepstudy.csv"
    d = pd.read_csv(path)  # as glmm reads it (integer Subject), and with a categorical Subject
    dc = d.assign(Subject=d["Subject"].astype(str).astype("category"))
    for _ in range(max(HOT_FITS, 20)):
        quiet(multilevel.fit, SLEEP, d)
        quiet(multilevel.fit, SLEEP, dc)
    t, m = timed(lambda: quiet(multilevel.fit, SLEEP, d), reps)
    t_cat, _ = timed(lambda: quiet(multilevel.fit, SLEEP, dc), reps)
    numpy_tier = FitControl(compiled_kernels=False)
    t_np, _ = timed(lambda: quiet(multilevel.fit, SLEEP, d, control=numpy_tier), reps)
    script = TIER_SCRIPT.format(path=str(path), formula=SLEEP)
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    first = json.loads(run.stdout)
    return {
        "seconds": t,
        "seconds_categorical": t_cat,
        "criterion": float(m.reml_criterion),
        "optimizer": m.optinfo.optimizer,
        "n_evals": m.optinfo.n_evals,
        "numpy_tier_seconds": t_np,
        "hot_fits": HOT_FITS,
        "fresh_process_first_20": first,
    }


def ml_refit(reps: int, refs: dict) -> dict:
    m = quiet(multilevel.fit, SLEEP, multilevel.load_dataset("sleepstudy"))
    if not hasattr(m, "refit"):
        return {"skipped": missing("fit.refit")}
    ref = refs.get("sleepstudy_refit")
    newy = np.asarray(ref["newy"], float) if ref else np.asarray(m.simulate(1, seed=1)).ravel()
    quiet(m.refit, newy)
    t, r = timed(lambda: quiet(m.refit, newy), reps)
    out = {"seconds": t, "criterion": float(r.reml_criterion)}
    if ref:
        out["criterion_ref"] = ref["REMLcrit"]
        out["criterion_rel_diff"] = (out["criterion"] - ref["REMLcrit"]) / ref["REMLcrit"]
    c = quiet(multilevel.fit, CBPP, multilevel.load_dataset("cbpp"), family="binomial")
    cref = refs.get("cbpp_refit")
    if cref:
        inc = np.asarray(cref["incidence"], float)
        size = np.asarray(cref["size"], float)
        for label, y in (
            ("two-column matrix", np.column_stack([inc, size - inc])),
            ("incidence counts", inc),
        ):
            try:
                rc = quiet(c.refit, y)
            except Exception as exc:
                print(f"cbpp refit with the {label} failed: {exc}", file=sys.stderr)
                continue
            out["cbpp"] = {
                "response": label,
                "loglik": float(rc.loglik),
                "loglik_ref_tight": cref["tight_logLik"],
                "loglik_ref_default": cref["logLik"],
            }
            break
    return out


def bootstrap_rate(fit, n: int, seed: int) -> dict:
    quiet(multilevel.bootstrap, fit, 20, seed=seed + 1)  # first-use costs out of the timing
    t0 = time.perf_counter()
    b = quiet(multilevel.bootstrap, fit, n, seed=seed)
    secs = time.perf_counter() - t0
    reps = b.replicates
    out = {
        "n": n,
        "seconds": secs,
        "per_second": n / secs,
        "columns": [str(c) for c in reps.columns],
        "n_failed": int(getattr(b, "n_failed", -1)),
        "n_singular": int(getattr(b, "n_singular", -1)),
        "replicates": reps.to_numpy(float),
    }
    try:
        out["confint_perc"] = b.confint(level=0.95, method="perc").to_dict()
    except Exception as exc:
        print(f"bootstrap confint failed: {exc}", file=sys.stderr)
    return out


def ml_boot_sleepstudy(n: int) -> dict:
    if not hasattr(multilevel, "bootstrap"):
        return {"skipped": missing("multilevel.bootstrap")}
    m = quiet(multilevel.fit, SLEEP, multilevel.load_dataset("sleepstudy"))
    return bootstrap_rate(m, n, seed=1)


def ml_boot_cbpp(n: int) -> dict:
    if not hasattr(multilevel, "bootstrap"):
        return {"skipped": missing("multilevel.bootstrap")}
    m = quiet(multilevel.fit, CBPP, multilevel.load_dataset("cbpp"), family="binomial")
    return bootstrap_rate(m, n, seed=2)


def as_frame(table) -> pd.DataFrame | None:
    if isinstance(table, pd.DataFrame):
        return table
    for attr in ("to_pandas", "to_frame", "frame", "table"):
        v = getattr(table, attr, None)
        v = v() if callable(v) else v
        if isinstance(v, pd.DataFrame):
            return v
    return None


def pb_pvalue(table) -> float | None:
    """The PB p-value of the larger model's row: the last finite value of the first column
    whose name mentions PB or bootstrap."""
    df = as_frame(table)
    if df is None:
        return None
    for col in df.columns:
        name = str(col).lower()
        if "pb" in name or "boot" in name:
            vals = pd.to_numeric(df[col], errors="coerce").dropna()
            if len(vals):
                return float(vals.iloc[-1])
    return None


def ml_pb(n: int) -> dict:
    if not has_param(multilevel.anova, "test"):
        return {"skipped": missing('multilevel.anova(m0, m1, test="PB")')}
    d = multilevel.load_dataset("sleepstudy")
    m0, m1 = quiet(multilevel.fit, SLEEP0, d), quiet(multilevel.fit, SLEEP, d)
    quiet(multilevel.anova, m0, m1, test="PB", n=20, seed=2)
    t0 = time.perf_counter()
    table = quiet(multilevel.anova, m0, m1, test="PB", n=n, seed=1)
    secs = time.perf_counter() - t0
    p = pb_pvalue(table)
    if p is None:
        print("anova(test='PB'): no column named like PB/bootstrap; the table was:\n", table, file=sys.stderr)
    return {"n": n, "seconds": secs, "per_second": n / secs, "p_PB": p, "table": str(table)}


CRIT_NAMES = ("reml_criterion", "remlcrit", "reml_crit", "criterion", "objective", "deviance")


RESP_NAMES = ("response", "resp", "response_id", "outcome", "y")


def find_col(df: pd.DataFrame, wanted: tuple[str, ...]) -> str | None:
    low = {str(c).lower(): c for c in df.columns}
    for w in wanted:
        if w in low:
            return low[w]
    for c in df.columns:
        if "reml" in str(c).lower() and "crit" in str(c).lower() and wanted is CRIT_NAMES:
            return c
    return None


def many_criteria(df: pd.DataFrame, names: list[str]) -> np.ndarray | None:
    """One REML criterion per response, in order, from fit_many's tidy frame (long or
    wide, the response named by a column or the index, by name or by position)."""
    crit = find_col(df, CRIT_NAMES)
    if crit is None:
        print(f"fit_many: no REML criterion column among {list(df.columns)}", file=sys.stderr)
        return None
    resp = find_col(df, RESP_NAMES)
    key = df[resp] if resp is not None else pd.Series(df.index, index=df.index)
    first = pd.to_numeric(df[crit], errors="coerce").groupby(key.to_numpy(), sort=False).first()
    if set(names) <= set(map(str, first.index)):
        first.index = first.index.map(str)
        return first.reindex(names).to_numpy(float)
    if len(first) == len(names):
        try:
            return first.sort_index().to_numpy(float)
        except TypeError:
            return first.to_numpy(float)
    print(
        f"fit_many: cannot tell the responses apart ({len(first)} keys, {len(names)} responses)",
        file=sys.stderr,
    )
    return None


def call_fit_many(design: pd.DataFrame, y: np.ndarray, names: list[str]):
    frame = pd.DataFrame(y, columns=names)
    try:
        return quiet(multilevel.fit_many, MANY, design, frame), "DataFrame"
    except (TypeError, ValueError) as exc:
        print(f"fit_many with a DataFrame of responses failed ({exc}); trying an array", file=sys.stderr)
        return quiet(multilevel.fit_many, MANY, design, y), "array"


def ml_many(design: pd.DataFrame, y: np.ndarray, n_check: int) -> dict:
    if not hasattr(multilevel, "fit_many"):
        return {"skipped": missing("multilevel.fit_many")}
    names = response_names(y.shape[1])
    call_fit_many(design, y[:, :50], names[:50])  # first-use costs out of the timing
    t0 = time.perf_counter()
    out, how = call_fit_many(design, y, names)
    secs = time.perf_counter() - t0
    res = {"n": y.shape[1], "seconds": secs, "per_second": y.shape[1] / secs, "responses_as": how}
    res["columns"] = [str(c) for c in out.columns] if isinstance(out, pd.DataFrame) else None
    crit = many_criteria(out, names) if isinstance(out, pd.DataFrame) else None
    res["criterion"] = crit
    for flag in ("converged", "singular"):
        col = find_col(out, (flag, f"is_{flag}")) if isinstance(out, pd.DataFrame) else None
        if col is not None:
            res[f"n_{flag}"] = int(out.groupby(find_col(out, RESP_NAMES) or out.index)[col].first().sum())
    # the check: random responses against their own fit()
    rng = np.random.default_rng(0)
    pick = rng.choice(y.shape[1], size=min(n_check, y.shape[1]), replace=False)
    own = np.array([quiet(multilevel.fit, MANY, design.assign(y=y[:, k])).reml_criterion for k in pick])
    res["check_n"] = len(pick)
    if crit is None:
        res["check"] = "unavailable: no REML criterion per response in fit_many's frame"
        print(f"fit_many check {res['check']}", file=sys.stderr)
    else:
        rel = np.abs(crit[pick] - own) / np.abs(own)
        res["check_max_rel"] = float(np.nanmax(rel))
        res["check_pass"] = bool(np.all(rel <= 1e-8))
    # context: the plain loops multilevel users would write instead
    k_loop = min(200, y.shape[1])
    t0 = time.perf_counter()
    for k in range(k_loop):
        quiet(multilevel.fit, MANY, design.assign(y=y[:, k]))
    res["fit_loop_per_second"] = k_loop / (time.perf_counter() - t0)
    m = quiet(multilevel.fit, MANY, design.assign(y=y[:, 0]))
    if hasattr(m, "refit"):
        t0 = time.perf_counter()
        for k in range(k_loop):
            quiet(m.refit, y[:, k])
        res["refit_loop_per_second"] = k_loop / (time.perf_counter() - t0)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small counts, for a check of the harness")
    ap.add_argument("--json", default=None, help="default benchmarks/refits_results[_quick].json")
    args = ap.parse_args()
    q = args.quick
    n = {
        "first_reps": 7,
        "warm_reps": 201 if q else 1001,
        "boot": 200 if q else 2000,
        "boot_cbpp": 100 if q else 1000,
        "pb": 100 if q else 1000,
        "many": 2000 if q else 20000,
        "many_check": 50,
        "r_boot": 50 if q else 200,
        "r_cbpp": 30 if q else 100,
        "r_pb": 50 if q else 300,
        "r_many": 100 if q else 300,
        "glmm_many": 500 if q else 2000,
    }
    refs = load_refs()
    results: dict = {"quick": q, "counts": n, "python": sys.version.split()[0]}

    print("1. first fit in fresh processes ...", file=sys.stderr)
    results["first_fit"] = first_fit(n["first_reps"])

    design, y = many_responses(n["many"])
    names = response_names(n["many"])
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for who, k in (("r", n["r_many"]), ("glmm", n["glmm_many"])):
            paths[who] = Path(tmp) / f"many_{who}.csv"
            frame = pd.concat([design, pd.DataFrame(y[:, :k], columns=names[:k])], axis=1)
            frame.to_csv(paths[who], index=False, float_format="%.17g")
        print("lme4 (one Rscript call) ...", file=sys.stderr)
        newy = get(refs, "sleepstudy_refit", "newy")
        results["lme4"] = run_lme4(
            {
                "sleepstudy": str(SLEEP_CSV),
                "cbpp": str(DATASETS / "cbpp.csv"),
                "many": str(paths["r"]),
                "reps": min(n["warm_reps"], 51),  # lme4's ~10 ms a fit: 51 are enough for a median
                "newy": newy if newy is not None else [],
                "boot_nsim": n["r_boot"],
                "cbpp_nsim": n["r_cbpp"],
                "pb_nsim": n["r_pb"],
            }
        )
        print("glmm ...", file=sys.stderr)
        results["glmm"] = run_glmm(n["warm_reps"], paths["glmm"])

    print("multilevel ...", file=sys.stderr)
    sections = {
        "warm": lambda: ml_warm(n["warm_reps"]),
        "refit": lambda: ml_refit(min(n["warm_reps"], 201), refs),
        "boot_sleepstudy": lambda: ml_boot_sleepstudy(n["boot"]),
        "boot_cbpp": lambda: ml_boot_cbpp(n["boot_cbpp"]),
        "pb": lambda: ml_pb(n["pb"]),
        "many": lambda: ml_many(design, y, n["many_check"]),
    }
    ml: dict = {}
    for key, go in sections.items():
        try:
            ml[key] = go()
        except Exception as exc:  # a failure is a result, not a crash
            print(f"multilevel {key} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            ml[key] = {"failed": f"{type(exc).__name__}: {exc}"}
    results["multilevel"] = ml

    report(results, refs, n)
    out = (
        Path(args.json) if args.json else HERE / ("refits_results_quick.json" if q else "refits_results.json")
    )
    out.write_text(json.dumps(jsonable(results), indent=2) + "\n")
    print(f"\nwritten {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
