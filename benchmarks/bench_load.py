"""Large fits on a busy machine: InstEval's warm ML fit, quiet and with every core
kept busy by other processes, multilevel beside `glmm` (issue 18).

The benchmark starts the competing processes itself (one CPU-bound Python loop per
core, ``--burners`` to change it), times each library's warm fit with and without
them, and stops them again, whatever happens. Each phase fits once to warm up, then
times ``--reps`` fits and reports the median, the quartiles and the ratio to
multilevel. Run it on an otherwise idle machine: the "quiet" phase is only as
quiet as the machine.

    python benchmarks/bench_load.py [--reps N] [--burners K] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings

import numpy as np

import multilevel

FORMULA = "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)"


def _burners(k: int) -> list[subprocess.Popen]:
    loop = "while True:\n    pass\n"
    return [subprocess.Popen([sys.executable, "-c", loop]) for _ in range(k)]


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


def _fitters(data):
    def ml():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return -2 * multilevel.fit(FORMULA, data, reml=False).loglik

    out = {"multilevel": ml}
    try:
        import glmm
    except ImportError:
        print("glmm is not installed (pip install glmm): multilevel alone", file=sys.stderr)
        return out

    def gl():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return -2 * float(glmm.fit(data, FORMULA, reml=False).loglik)

    out["glmm"] = gl
    return out


def _time(fn, reps: int) -> tuple[list[float], float]:
    crit = fn()  # warm
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        crit = fn()
        times.append(time.perf_counter() - t0)
    return times, float(crit)


def _summary(times: list[float]) -> dict:
    q = np.quantile(times, [0.25, 0.5, 0.75])
    return {"median": float(q[1]), "q1": float(q[0]), "q3": float(q[2]), "times": times}


def run(reps: int, burners: int) -> dict:
    data = multilevel.load_dataset("InstEval")
    fitters = _fitters(data)
    results: dict = {"burners": burners, "cores": os.cpu_count(), "reps": reps, "phases": {}}
    for phase in ("quiet", "loaded"):
        procs = _burners(burners) if phase == "loaded" else []
        try:
            if procs:
                time.sleep(0.5)  # let them reach the run queue
            row = {}
            for name, fn in fitters.items():
                times, crit = _time(fn, reps)
                row[name] = {**_summary(times), "deviance": crit}
            results["phases"][phase] = row
        finally:
            _stop(procs)
    return results


def report(results: dict) -> None:
    names = list(results["phases"]["quiet"])
    print(
        f"InstEval ML, warm fit: median seconds of {results['reps']} "
        f"(quartiles); loaded = {results['burners']} CPU-bound processes on {results['cores']} cores"
    )
    print(f"{'library':<12} {'quiet':>22} {'loaded':>22} {'loaded/quiet':>13} {'deviance':>16}")
    for name in names:
        cells = []
        for phase in ("quiet", "loaded"):
            r = results["phases"][phase][name]
            cells.append(f"{r['median']:.3f} ({r['q1']:.2f}-{r['q3']:.2f})")
        ratio = results["phases"]["loaded"][name]["median"] / results["phases"]["quiet"][name]["median"]
        dev = results["phases"]["quiet"][name]["deviance"]
        print(f"{name:<12} {cells[0]:>22} {cells[1]:>22} {ratio:>13.2f} {dev:>16.4f}")
    if "glmm" in names:
        for phase in ("quiet", "loaded"):
            ours = results["phases"][phase]["multilevel"]["median"]
            theirs = results["phases"][phase]["glmm"]["median"]
            print(f"{phase}: glmm / multilevel = {theirs / ours:.2f} (above 1: multilevel faster)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--burners", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--json", help="write the results to this file")
    args = ap.parse_args()
    results = run(args.reps, args.burners)
    report(results)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(results, fh, indent=1)


if __name__ == "__main__":
    main()
