"""Nonlinear mixed models: multilevel.nlfit against nlme (ML) and lme4::nlmer (Laplace), in one run.

Orange (``SSlogis``, random asymptote by tree) and Theoph (``SSfol``, diagonal random
effects on the three parameters by subject). For every tool: the first fit in a fresh
process (after ``import multilevel``, which is lazy: the first fit imports what it
uses; the Gaussian Laplace fit is NumPy only, with no SciPy and nothing to compile),
the same with the import (for R: the package's ``library()`` time), and the median
of warm fits,
with the log-likelihood each reached (nlme's is its own linearization, not Laplace).

    python benchmarks/bench_nlmm.py [--reps N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"

CASES = {
    "Orange": (
        "circumference ~ SSlogis(age, Asym, xmid, scal)",
        {"Asym": "1 + (1 | Tree)"},
    ),
    "Theoph": (
        "conc ~ SSfol(Dose, Time, lKe, lKa, lCl)",
        {"lKe": "1 + (1 | Subject)", "lKa": "1 + (1 | Subject)", "lCl": "1 + (1 | Subject)"},
    ),
}

PY_FIRST = r"""
import json, sys, time, warnings
import pandas as pd
t0 = time.perf_counter()
import multilevel
formula, params, csv = json.loads(sys.argv[1])
d = pd.read_csv(csv)
t1 = time.perf_counter()
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    m = multilevel.nlfit(formula, d, params)
t2 = time.perf_counter()
print(json.dumps({"first": t2 - t1, "with_import": t2 - t0, "loglik": m.loglik}))
"""

R_SCRIPT = r"""
library(jsonlite)
# each package's load time, as a fresh session pays it before its first fit
lib <- c(nlme = system.time(suppressPackageStartupMessages(library(nlme)))[["elapsed"]],
         nlmer = system.time(suppressPackageStartupMessages(library(lme4)))[["elapsed"]])
args <- commandArgs(TRUE); reps <- as.integer(args[2]); dir <- args[1]
Orange <- read.csv(file.path(dir, "Orange.csv")); Orange$Tree <- factor(Orange$Tree)
Theoph <- read.csv(file.path(dir, "Theoph.csv")); Theoph$Subject <- factor(Theoph$Subject)
fits <- list(
  Orange = list(
    nlme = function() nlme(circumference ~ SSlogis(age, Asym, xmid, scal), data = Orange,
      fixed = Asym + xmid + scal ~ 1, random = Asym ~ 1 | Tree,
      start = c(Asym = 200, xmid = 700, scal = 350), method = "ML"),
    nlmer = function() nlmer(circumference ~ SSlogis(age, Asym, xmid, scal) ~ Asym | Tree, Orange,
      start = c(Asym = 200, xmid = 700, scal = 350))),
  Theoph = list(
    nlme = function() nlme(conc ~ SSfol(Dose, Time, lKe, lKa, lCl), data = Theoph,
      fixed = lKe + lKa + lCl ~ 1, random = pdDiag(lKe + lKa + lCl ~ 1), groups = ~Subject,
      start = c(lKe = -2.5, lKa = 0.5, lCl = -3), method = "ML"),
    nlmer = function() suppressWarnings(nlmer(conc ~ SSfol(Dose, Time, lKe, lKa, lCl) ~
      (0 + lKe | Subject) + (0 + lKa | Subject) + (0 + lCl | Subject), Theoph,
      start = c(lKe = -2.5, lKa = 0.5, lCl = -3)))))
out <- list()
for (case in names(fits)) for (tool in names(fits[[case]])) {
  f <- fits[[case]][[tool]]
  first <- system.time(m <- f())[["elapsed"]]
  warm <- median(sapply(seq_len(reps), function(i) system.time(f())[["elapsed"]]))
  out[[case]][[tool]] <- list(first = first, first_with_import = first + lib[[tool]], warm = warm,
                              loglik = as.numeric(logLik(m)))
}
cat(toJSON(out, auto_unbox = TRUE, digits = NA))
"""


def python_times(reps: int) -> dict:
    import compileall
    import warnings

    import pandas as pd

    import multilevel

    # byte-compiled, as an installed package is (PYTHONDONTWRITEBYTECODE would otherwise
    # leave every fresh process compiling the sources it imports)
    compileall.compile_dir(str(Path(multilevel.__file__).parent), quiet=1)

    out = {}
    for case, (formula, params) in CASES.items():
        csv = str(DATA / f"{case}.csv")
        proc = subprocess.run(
            [sys.executable, "-c", PY_FIRST, json.dumps([formula, params, csv])],
            capture_output=True,
            text=True,
            check=True,
        )
        first = json.loads(proc.stdout.strip().splitlines()[-1])
        d = pd.read_csv(csv)
        times = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = multilevel.nlfit(formula, d, params)
            for _ in range(reps):
                t0 = time.perf_counter()
                m = multilevel.nlfit(formula, d, params)
                times.append(time.perf_counter() - t0)
        out[case] = {
            "first": first["first"],
            "first_with_import": first["with_import"],
            "warm": statistics.median(times),
            "loglik": m.loglik,
        }
    return out


def r_times(reps: int) -> dict:
    if not shutil.which("Rscript"):
        return {}
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as fh:
        fh.write(R_SCRIPT)
    proc = subprocess.run(["Rscript", fh.name, str(DATA), str(reps)], capture_output=True, text=True)
    Path(fh.name).unlink()
    if proc.returncode != 0:
        print(proc.stderr, file=sys.stderr)
        return {}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    py = python_times(args.reps)
    r = r_times(args.reps)
    print(
        "| model | tool | first fit (s) | with import / library (s) | warm median (s) | warm / multilevel "
        "| logLik |"
    )
    print("|---|---|---:|---:|---:|---:|---:|")
    for case in CASES:
        base = py[case]["warm"]
        rows = [("multilevel", py[case])] + [(t, v) for t, v in r.get(case, {}).items()]
        for tool, v in rows:
            print(
                f"| {case} | {tool} | {v['first']:.3f} | {v.get('first_with_import', math.nan):.3f} | "
                f"{v['warm']:.4f} | {v['warm'] / base:.2f}x | {v['loglik']:.4f} |"
            )
    print(
        "\nfirst fit: in a fresh process after `import multilevel` / `library()`, counting the imports "
        "the fit itself triggers; 'with import / library' adds `import multilevel` (pandas already "
        "loaded) or the R package's load time."
    )
    if args.json:
        args.json.write_text(json.dumps({"multilevel": py, "R": r}, indent=2))


if __name__ == "__main__":
    main()
