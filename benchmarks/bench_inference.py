"""Profile confidence intervals: multilevel's ``confint(method="profile")`` against lme4's
``confint(m, method = "profile")`` (Rscript), in one run.

sleepstudy, ``Reaction ~ Days + (Days | Subject)`` by REML (both profile the ML
deviance). Two times each, medians over repetitions:

* first call: the first ``confint`` of a fresh process (after the fit; its lazy
  imports and first-use costs included), one fresh process per repetition;
* warm: later calls in the same process.

Also prints the largest relative difference between the two sets of intervals.

    python benchmarks/bench_inference.py [--reps N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import multilevel

FORMULA = "Reaction ~ Days + (Days | Subject)"

FIRST_CALL = f"""
import time, warnings, multilevel
m = multilevel.fit({FORMULA!r}, multilevel.load_dataset("sleepstudy"))
t0 = time.perf_counter()
m.confint(method="profile")
print(time.perf_counter() - t0)
"""

R_SCRIPT = r"""
suppressMessages({library(lme4); library(jsonlite)})
args <- commandArgs(TRUE)
d <- read.csv(args[1]); d$Subject <- factor(d$Subject)
m <- lmer(Reaction ~ Days + (Days | Subject), d)
reps <- as.integer(args[2])
t0 <- proc.time()[["elapsed"]]
ci <- suppressMessages(confint(m, method = "profile", oldNames = FALSE))
first <- proc.time()[["elapsed"]] - t0
warm <- replicate(reps, system.time(suppressMessages(confint(m, method = "profile")))[["elapsed"]])
cat(toJSON(list(first = first, warm = median(warm), lower = unname(ci[, 1]), upper = unname(ci[, 2])),
           digits = NA, auto_unbox = TRUE))
"""


def multilevel_times(reps: int) -> tuple[float, float, object]:
    firsts = []
    for _ in range(reps):
        out = subprocess.run([sys.executable, "-c", FIRST_CALL], capture_output=True, text=True, check=True)
        firsts.append(float(out.stdout.strip().splitlines()[-1]))
    m = multilevel.fit(FORMULA, multilevel.load_dataset("sleepstudy"))
    m.confint()  # the first call of this process
    warm = []
    for _ in range(reps):
        t0 = time.perf_counter()
        ci = m.confint(method="profile")
        warm.append(time.perf_counter() - t0)
    return statistics.median(firsts), statistics.median(warm), ci


def lme4_times(reps: int) -> dict | None:
    if not shutil.which("Rscript"):
        return None
    csv = Path(multilevel.__file__).parent / "datasets" / "sleepstudy.csv"
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as fh:
        fh.write(R_SCRIPT)
    firsts, res = [], None
    for _ in range(max(1, reps // 2)):  # each R run also times `reps` warm calls
        r = subprocess.run(["Rscript", fh.name, str(csv), str(reps)], capture_output=True, text=True)
        if r.returncode != 0:
            print("lme4 run failed:", r.stderr[-400:], file=sys.stderr)
            return None
        res = json.loads(r.stdout)
        firsts.append(res["first"])
    assert res is not None
    res["first"] = statistics.median(firsts)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    first, warm, ci = multilevel_times(args.reps)
    r = lme4_times(args.reps)
    print("\n| tool | first call (s) | warm (s) | first / multilevel's | warm / multilevel's |")
    print("|---|---:|---:|---:|---:|")
    print(f"| multilevel | {first:.3f} | {warm:.3f} | 1.0x | 1.0x |")
    out = {"multilevel": {"first": first, "warm": warm}}
    if r is not None:
        ratios = f"{r['first'] / first:.1f}x | {r['warm'] / warm:.1f}x"
        print(f"| lme4 | {r['first']:.3f} | {r['warm']:.3f} | {ratios} |")
        import numpy as np

        ours = ci.to_numpy()
        theirs = np.column_stack([r["lower"], r["upper"]])
        rel = np.abs(ours - theirs) / np.maximum(np.abs(theirs), 1e-12)
        print(f"\nlargest relative difference of the intervals from lme4's: {rel.max():.2e}")
        out["lme4"] = {"first": r["first"], "warm": r["warm"], "max_rel_diff": float(rel.max())}
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
