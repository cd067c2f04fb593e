"""Helpers shared by the benchmark scripts: timing, lme4 through Rscript, tables."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import multilevel


def peak_rss() -> int:
    """This process's peak resident memory in bytes since it started or since
    :func:`reset_peak` (Linux's ``VmHWM``; elsewhere ``ru_maxrss``, never reset)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def reset_peak() -> bool:
    """Start :func:`peak_rss` over from the memory in use now (Linux: ``clear_refs``), so
    that a measurement leaves out what came before it (a benchmark's data generator);
    False where this is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def gib(b: float) -> float:
    return round(b / 2**30, 3)


def emit(out: dict, path: str | None) -> None:
    """Print a benchmark's JSON record and append it as one line to ``path`` (if given)."""
    print(json.dumps(out, indent=2))
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps(out) + "\n")


def timed(fn, reps):
    """Median wall time of ``reps`` calls and the last result."""
    times, out = [], None
    for _ in range(reps):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


R_SCRIPT = r"""
suppressMessages(library(lme4)); suppressMessages(library(jsonlite))
args <- commandArgs(TRUE)
cfg <- fromJSON(args[1], simplifyVector = FALSE)
cols <- fromJSON(args[2], simplifyVector = FALSE)
out <- list()
for (case in cfg) {
  d <- read.csv(case$path)
  spec <- cols[[case$data]]
  if (!is.null(spec)) for (col in spec$columns) {
    if (col$type %in% c("factor", "ordered"))
      d[[col$name]] <- factor(as.character(d[[col$name]]), levels = unlist(col$levels))
  }
  if (case$data == "radon") d$county <- factor(d$county)
  times <- numeric(0)
  for (i in seq_len(case$reps)) {
    t0 <- proc.time()[["elapsed"]]
    m <- if (case$fun == "lmer") lmer(as.formula(case$formula), data = d, REML = case$reml)
         else glmer(as.formula(case$formula), data = d, family = case$family, nAGQ = case$nagq)
    times <- c(times, proc.time()[["elapsed"]] - t0)
  }
  crit <- if (case$fun == "glmer") as.numeric(logLik(m)) else if (case$reml) REMLcrit(m) else deviance(m)
  out[[case$name]] <- list(seconds = median(times), criterion = crit)
}
cat(toJSON(out, auto_unbox = TRUE, digits = NA))
"""


def run_r_fits(cases, reps_for, fun):
    """Fit ``cases`` (name, data, formula, options) with lme4's ``fun`` in one Rscript run."""
    if not shutil.which("Rscript"):
        return {}
    if subprocess.run(["Rscript", "-e", "library(lme4)"], capture_output=True).returncode != 0:
        return {}
    ds = Path(multilevel.__file__).parent / "datasets"
    cfg = []
    for name, data, formula, opts in cases:
        fname = {"InstEval": "InstEval.csv.gz", "VerbAgg": "VerbAgg.csv.gz"}.get(data, f"{data}.csv")
        cfg.append(
            {
                "name": name,
                "data": data,
                "path": str(ds / fname),
                "formula": formula,
                "fun": fun,
                "reml": opts.get("reml", True),
                "family": opts.get("family", "gaussian"),
                "nagq": opts.get("nagq", 1),
                "reps": reps_for(name, lme4=True),
            }
        )
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as fh:
        fh.write(R_SCRIPT)
        script = fh.name
    r = subprocess.run(
        ["Rscript", script, json.dumps(cfg), str(ds / "columns.json")], capture_output=True, text=True
    )
    if r.returncode != 0:
        print("lme4 run failed:", r.stderr[-500:], file=sys.stderr)
        return {}
    return {k: (v["seconds"], v["criterion"]) for k, v in json.loads(r.stdout).items()}


def print_table(results, tools, what):
    """Markdown table: median time, ratio to multilevel, and the criterion each reached."""
    print(f"\n| model | tool | median time (s) | time / multilevel | {what} | {what} - multilevel's |")
    print("|---|---|---:|---:|---:|---:|")
    for name, row in results.items():
        base_t, base_c = row["multilevel"]
        for tool in tools:
            v = row.get(tool)
            if v is None:
                print(f"| {name} | {tool} | n/a | | | |")
                continue
            t, c = v
            print(f"| {name} | {tool} | {t:.4f} | {t / base_t:.1f}x | {c:.6f} | {c - base_c:+.2e} |")
