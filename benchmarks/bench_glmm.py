"""GLMM benchmark: multilevel against lme4 (Rscript) and the `glmm` package, in one run.

cbpp (binomial, Laplace and 25-node quadrature), grouseticks (Poisson, three
crossed/nested factors) and VerbAgg (binary, 7,584 rows, crossed person x item).
Prints median wall times (data frame in, fit out), ratios to multilevel and the
log-likelihood each reached (higher is better; for lme4's quadrature fit its
logLik() is on another scale, see shared/reference/README.md).

    python benchmarks/bench_glmm.py [--reps N] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from common import print_table, run_r_fits, timed

import multilevel

CASES = [
    (
        "cbpp",
        "cbpp",
        "cbind(incidence, size - incidence) ~ period + (1 | herd)",
        {"family": "binomial", "nagq": 1},
    ),
    (
        "cbpp_agq25",
        "cbpp",
        "cbind(incidence, size - incidence) ~ period + (1 | herd)",
        {"family": "binomial", "nagq": 25},
    ),
    (
        "grouseticks",
        "grouseticks",
        "TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)",
        {"family": "poisson", "nagq": 1},
    ),
    (
        "verbagg",
        "VerbAgg",
        "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)",
        {"family": "binomial", "nagq": 1},
    ),
]


def run_multilevel(data, formula, opts, reps):
    def go():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return multilevel.fit(formula, data, family=opts["family"], nagq=opts["nagq"])

    go()
    t, m = timed(go, reps)
    return t, m.loglik


def glmm_inputs(name, data, formula):
    """glmm's formula parser takes column names only: precompute the derived columns."""
    data = data.copy()
    if name.startswith("cbpp"):
        data["failures"] = data["size"] - data["incidence"]
        formula = "cbind(incidence, failures) ~ period + (1 | herd)"
    elif name == "grouseticks":
        data["sHEIGHT"] = (data.HEIGHT - data.HEIGHT.mean()) / data.HEIGHT.std()
        formula = formula.replace("scale(HEIGHT)", "sHEIGHT")
    elif name == "verbagg":
        data["r2"] = (data.r2 == "Y").astype(float)
    return data, formula


def run_glmm(data, formula, opts, reps):
    import glmm

    def go():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return glmm.fit(data, formula, family=opts["family"], nagq=opts["nagq"])

    go()
    t, m = timed(go, reps)
    return t, float(m.loglik)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--json", help="write the results to this file")
    args = ap.parse_args()

    def reps_for(name, lme4=False):
        return max(1, args.reps // 3) if (lme4 and name == "verbagg") else args.reps

    results: dict[str, dict] = {}
    for name, dname, formula, opts in CASES:
        data = multilevel.load_dataset(dname)
        row = {"multilevel": run_multilevel(data, formula, opts, reps_for(name))}
        try:
            gdata, gformula = glmm_inputs(name, data, formula)
            row["glmm"] = run_glmm(gdata, gformula, opts, reps_for(name))
        except Exception as exc:  # a peer failing is a result, not a crash
            print(f"glmm failed on {name}: {exc}", file=sys.stderr)
            row["glmm"] = None
        results[name] = row
        print(f"done {name}", file=sys.stderr)
    for name, val in run_r_fits(CASES, reps_for, "glmer").items():
        results[name]["lme4"] = val
    print_table(results, ["multilevel", "glmm", "lme4"], "logLik")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
