"""LMM benchmark: multilevel against its peers, side by side in one run.

Fits sleepstudy, Penicillin, radon (correlated slope) and InstEval (ML) with
multilevel, the `glmm` and `mixedlm` packages from PyPI, statsmodels MixedLM
(where it can express the model in reasonable time) and lme4 through Rscript
(when R with lme4 is installed). Prints a table of median wall times (data
frame in, fit out), the ratio to multilevel, and the criterion each reached
(REML criterion, or deviance for ML fits; lower is better).

    python benchmarks/bench_lmm.py [--reps N] [--skip-slow] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
from common import print_table, run_r_fits
from common import timed as _time

import multilevel

CASES = [
    ("sleepstudy", "sleepstudy", "Reaction ~ Days + (Days | Subject)", True),
    ("penicillin", "Penicillin", "diameter ~ 1 + (1 | plate) + (1 | sample)", True),
    ("radon", "radon", "log_radon ~ basement + (basement | county)", True),
    ("insteval", "InstEval", "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)", False),
]


def run_multilevel(data, formula, reml, reps):
    def go():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return multilevel.fit(formula, data, reml=reml)

    go()  # warm imports
    t, m = _time(go, reps)
    return t, (m.reml_criterion if reml else m.deviance)


def run_glmm(data, formula, reml, reps):
    import glmm

    def go():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return glmm.fit(data, formula, reml=reml)

    go()
    t, m = _time(go, reps)
    return t, -2 * float(m.loglik)


def run_mixedlm(data, formula, reml, reps):
    import mixedlm

    def go():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return mixedlm.lmer(formula, data, REML=reml)

    go()
    t, m = _time(go, reps)
    ll = m.logLik()
    return t, -2 * float(getattr(ll, "value", ll))


def run_statsmodels(name, data, reml, reps):
    import statsmodels.formula.api as smf

    if name == "sleepstudy":

        def go():
            return smf.mixedlm("Reaction ~ Days", data, groups=data["Subject"], re_formula="~Days").fit(
                reml=reml
            )
    elif name == "radon":

        def go():
            return smf.mixedlm(
                "log_radon ~ basement", data, groups=data["county"], re_formula="~basement"
            ).fit(reml=reml)
    elif name == "penicillin":
        d = data.assign(one=1)

        def go():
            return smf.mixedlm(
                "diameter ~ 1",
                d,
                groups=d["one"],
                re_formula="0",
                vc_formula={"plate": "0 + C(plate)", "sample": "0 + C(sample)"},
            ).fit(reml=reml)
    else:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        go()
        t, m = _time(go, reps)
    return t, -2 * float(m.llf)


def run_lme4(cases, reps_for):
    return run_r_fits([(n, d, f, {"reml": reml}) for n, d, f, reml in cases], reps_for, "lmer")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=11)
    ap.add_argument("--skip-slow", action="store_true", help="leave out InstEval")
    ap.add_argument("--json", help="write the results to this file")
    args = ap.parse_args()
    cases = [c for c in CASES if not (args.skip_slow and c[0] == "insteval")]

    def reps_for(name, lme4=False):
        if name == "insteval":
            return 1 if lme4 else 3
        return args.reps

    results: dict[str, dict[str, tuple[float, float] | None]] = {}
    for name, dname, formula, reml in cases:
        data = multilevel.load_dataset(dname)
        row: dict[str, tuple[float, float] | None] = {}
        row["multilevel"] = run_multilevel(data, formula, reml, reps_for(name))
        for tool, fn in (("glmm", run_glmm), ("mixedlm", run_mixedlm)):
            try:
                row[tool] = fn(data, formula, reml, reps_for(name))
            except Exception as exc:  # a peer failing is a result, not a crash
                print(f"{tool} failed on {name}: {exc}", file=sys.stderr)
                row[tool] = None
        try:
            row["statsmodels"] = run_statsmodels(name, data, reml, max(1, reps_for(name) // 3))
        except Exception as exc:
            print(f"statsmodels failed on {name}: {exc}", file=sys.stderr)
            row["statsmodels"] = None
        results[name] = row
        print(f"done {name}", file=sys.stderr)
    for name, val in run_lme4(cases, reps_for).items():
        results[name]["lme4"] = val

    print_table(results, ["multilevel", "glmm", "mixedlm", "statsmodels", "lme4"], "criterion")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    _ = np


if __name__ == "__main__":
    main()
