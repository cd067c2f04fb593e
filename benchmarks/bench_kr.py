"""Kenward-Roger benchmark: multilevel against pbkrtest, on InstEval and subsamples of it.

The model is InstEval's ``y ~ service + (1 | s) + (1 | d) + (1 | dept:service)``
fitted by REML (Kenward-Roger is defined at REML estimates), and the test is the
one of ``service`` (1 df): multilevel's ``fit.test("service", ddf="kenward-roger")``,
pbkrtest's ``KRmodcomp(fit, L)`` through Rscript. Subsamples are random InstEval
students (seed 1) with all their ratings, until about 500, 2,000, 5,000 and 10,000
rows (a random row sample would leave more random effects than rows at 500); each
tool fits the same rows. Times
cover the test only (the fit is not timed): the first call in a fresh process and
the median of warm calls (multilevel recomputes, its cached result is not reused).
Memory: the peak of Python allocations during the first call (tracemalloc) and R's
maximum resident set for the whole Rscript process (``/usr/bin/time``), which pbkrtest's
n x n covariance dominates; each Rscript run is capped at ``--r-mem-gb`` (10 GB) of
address space so that a size pbkrtest cannot hold fails instead of swamping a shared
machine, and from 5,000 rows pbkrtest gets one warm call (each takes minutes). The
full data (73,421 rows) runs multilevel only: pbkrtest would need several dense
73,421^2 matrices (40 GB each).

    python benchmarks/bench_kr.py [--sizes 500 2000 5000 10000] [--reps 3] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np

import multilevel
from multilevel.lmm.solution import solve
from multilevel.model.hypotheses import contrast_matrix

FORMULA = "y ~ service + (1 | s) + (1 | d) + (1 | dept:service)"

R_SCRIPT = r"""
suppressMessages({library(lme4); library(pbkrtest); library(jsonlite)})
args <- commandArgs(TRUE)
d <- read.csv(args[1])
for (v in c("s", "d", "dept", "service")) d[[v]] <- factor(d[[v]])
m <- lmer(y ~ service + (1 | s) + (1 | d) + (1 | dept:service), data = d, REML = TRUE)
L <- matrix(c(0, 1), nrow = 1)
reps <- as.integer(args[2])
times <- numeric(0)
for (i in seq_len(reps + 1)) {
  t0 <- proc.time()[["elapsed"]]
  kr <- KRmodcomp(m, L)
  times <- c(times, proc.time()[["elapsed"]] - t0)
}
cat(toJSON(list(first = times[1], warm = median(times[-1]), ddf = kr$test["Ftest", "ddf"],
                F = kr$test["Ftest", "stat"], REMLcrit = REMLcrit(m), theta = unname(getME(m, "theta"))),
           auto_unbox = TRUE, digits = NA))
"""


def subsample(data, n, seed=1):
    """Whole students (all their ratings) in random order until about ``n`` rows."""
    if n >= len(data):
        return data
    codes = data["s"].cat.codes.to_numpy()
    order = np.random.default_rng(seed).permutation(codes.max() + 1)
    counts = np.bincount(codes, minlength=order.size)[order]
    chosen = order[: int(np.searchsorted(np.cumsum(counts), n)) + 1]
    sub = data[np.isin(codes, chosen)].reset_index(drop=True)
    for c in ("s", "d", "dept", "service"):
        sub[c] = sub[c].cat.remove_unused_categories()
    return sub


def fit(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return multilevel.fit(FORMULA, data)


def ddf_at(m, theta):
    """multilevel's Kenward-Roger df at another optimizer's theta (the algebra alone)."""
    f = m.objective.factor(np.asarray(theta, dtype=float))
    opt = dataclasses.replace(m.optinfo, end=tuple(float(t) for t in theta))
    moved = dataclasses.replace(m, factor=f, solution=solve(m.objective, f), optinfo=opt)
    return moved.test(contrast_matrix(m.spec, "service"), ddf="kenward-roger").den_df


def run_multilevel(m, reps):
    L = contrast_matrix(m.spec, "service")

    def go():
        # a copy of the fit without its cached adjustment: the public path, recomputed
        return dataclasses.replace(m).test(L, ddf="kenward-roger")

    tracemalloc.start()
    t0 = time.perf_counter()
    first_test = m.test(L, ddf="kenward-roger")
    first = time.perf_counter() - t0
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    warm = []
    for _ in range(reps):
        t0 = time.perf_counter()
        go()
        warm.append(time.perf_counter() - t0)
    return {
        "first": first,
        "warm": float(np.median(warm)),
        "ddf": first_test.den_df,
        "F": first_test.F,
        "REMLcrit": m.reml_criterion,
        "peak_MB": peak,
    }


def run_pbkrtest(data, reps, timeout, mem_gb):
    if not shutil.which("Rscript"):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        csv, script = Path(tmp) / "d.csv", Path(tmp) / "kr.R"
        data.to_csv(csv, index=False)
        script.write_text(R_SCRIPT)
        cmd = ["Rscript", str(script), str(csv), str(reps)]
        timer = "/usr/bin/time" if Path("/usr/bin/time").exists() else None
        if timer:
            cmd = [timer, "-v", *cmd]
        # a cap on R's address space, so that a size pbkrtest cannot hold fails instead of swamping
        # the machine
        cmd = ["prlimit", f"--as={int(mem_gb * 2**30)}", *cmd] if shutil.which("prlimit") else cmd
        try:
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"did not finish in {timeout} s"}
    if r.returncode != 0:
        if "cannot allocate" in r.stderr or "Cannot allocate" in r.stderr:
            return {"error": f"out of memory (R capped at {mem_gb:g} GB)"}
        lines = [x for x in r.stderr.strip().splitlines() if x.strip() and not x.startswith("\t")]
        return {"error": lines[-1][:200] if lines else "failed"}
    out = json.loads(r.stdout.strip().splitlines()[-1])
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
    out["peak_MB"] = int(rss.group(1)) / 1024 if rss else float("nan")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="*", default=[500, 2000, 5000, 10000])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--timeout", type=int, default=3600, help="seconds per pbkrtest run")
    ap.add_argument("--r-mem-gb", type=float, default=10.0, help="address-space cap for each Rscript run")
    ap.add_argument("--r-warm-large", type=int, default=1, help="pbkrtest warm calls at 5,000 rows or more")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    data = multilevel.load_dataset("InstEval")
    results = []
    for n in [*args.sizes, len(data)]:
        sub = subsample(data, n)
        m = fit(sub)
        row = {"n": len(sub), "multilevel": run_multilevel(m, args.reps)}
        r_reps = args.reps if len(sub) < 5000 else args.r_warm_large
        row["pbkrtest"] = run_pbkrtest(sub, r_reps, args.timeout, args.r_mem_gb) if n < len(data) else None
        if row["pbkrtest"] and "theta" in row["pbkrtest"]:
            row["multilevel"]["ddf_at_lme4_theta"] = ddf_at(m, row["pbkrtest"]["theta"])
        results.append(row)
        print(json.dumps(row), file=sys.stderr)
    print(
        "\n| rows | tool | first call (s) | warm median (s) | peak memory (MB) | DenDF | F "
        "| DenDF at lme4's theta |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|")
    for row in results:
        for tool in ("multilevel", "pbkrtest"):
            v = row[tool]
            if v is None:
                gb = row["n"] ** 2 * 8 / 2**30
                print(f"| {row['n']:,} | {tool} | n/a (one n x n matrix: {gb:.0f} GB) | | | | |")
            elif "error" in v:
                print(f"| {row['n']:,} | {tool} | {v['error']} | | | | |")
            else:
                at = f"{v['ddf_at_lme4_theta']:.6f}" if "ddf_at_lme4_theta" in v else ""
                print(
                    f"| {row['n']:,} | {tool} | {v['first']:.3f} | {v['warm']:.3f} | {v['peak_MB']:.0f} | "
                    f"{v['ddf']:.6f} | {v['F']:.6f} | {at} |"
                )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
