"""Indirect inference in a simulation study (issue 17): does it recover known parameters?

The growth process of ``indirect_growth.py`` (log-logistic curves with a random
log asymptote per tree and AR(1) growth shocks: no tractable likelihood) is
simulated ``--reps`` times at known parameters; each data set is fitted by
``multilevel.indirect`` with a linear mixed model as the auxiliary model. The table
gives, per parameter, the mean estimate, the bias with its Monte Carlo SE, the SD of
the estimates beside the mean sandwich SE, and the coverage of the 95% Wald
intervals with its Monte Carlo SE; also the rejection rate of the J test at 5%.

    python benchmarks/bench_indirect.py [--reps 200] [--workers 2] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from concurrent.futures import ProcessPoolExecutor

import indirect_growth as growth
import numpy as np

import multilevel


def one(rep: int, n_sim: int, n_trees: int) -> dict:
    data = growth.observed(rep, n_trees)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = multilevel.indirect(
            growth.simulate,
            growth.AUXILIARY,
            data,
            start=growth.START,
            n_sim=n_sim,
            seed=rep,
            workers=1,
        )
    ci = r.confint()
    return {
        "rep": rep,
        "seconds": time.perf_counter() - t0,
        "converged": bool(r.converged),
        "estimate": r.estimate.to_dict(),
        "se": r.se.to_dict(),
        "lower": ci.iloc[:, 0].to_dict(),
        "upper": ci.iloc[:, 1].to_dict(),
        "J_p": r.J_p,
        "fits": r.auxiliary_fits,
    }


def summarize(rows: list[dict]) -> dict:
    ok = [r for r in rows if r["converged"]]
    out = {"reps": len(rows), "converged": len(ok), "parameters": {}}
    for name, truth in growth.TRUTH.items():
        est = np.array([r["estimate"][name] for r in ok])
        se = np.array([r["se"][name] for r in ok])
        cover = np.array([r["lower"][name] <= truth <= r["upper"][name] for r in ok])
        n = est.size
        bias = float(est.mean() - truth)
        out["parameters"][name] = {
            "truth": truth,
            "mean": float(est.mean()),
            "bias": bias,
            "bias_mcse": float(est.std(ddof=1) / np.sqrt(n)),
            "sd": float(est.std(ddof=1)),
            "mean_se": float(se.mean()),
            "coverage": float(cover.mean()),
            "coverage_mcse": float(np.sqrt(0.95 * 0.05 / n)),
        }
    jp = np.array([r["J_p"] for r in ok])
    out["J_reject_5pct"] = float(np.mean(jp < 0.05))
    out["median_seconds"] = float(np.median([r["seconds"] for r in rows]))
    out["median_fits"] = float(np.median([r["fits"] for r in rows]))
    return out


def report(s: dict) -> None:
    print(
        f"Indirect inference, growth process with AR(1) shocks: {s['converged']} of {s['reps']} "
        f"replications converged; median {s['median_seconds']:.2f} s and {s['median_fits']:.0f} "
        "auxiliary fits each"
    )
    head = f"{'parameter':<9} {'truth':>7} {'mean':>8} {'bias':>9} {'bias/MCSE':>9} {'SD':>8} {'mean SE':>8} "
    print(head + f"{'coverage':>9} {'(MCSE)':>7}")
    for name, p in s["parameters"].items():
        print(
            f"{name:<9} {p['truth']:>7.3f} {p['mean']:>8.4f} {p['bias']:>9.4f} "
            f"{p['bias'] / p['bias_mcse']:>9.2f} {p['sd']:>8.4f} {p['mean_se']:>8.4f} "
            f"{100 * p['coverage']:>8.1f}% {100 * p['coverage_mcse']:>6.1f}"
        )
    print(f"J test (3 df) rejects at 5% in {100 * s['J_reject_5pct']:.1f}% of the replications")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--n-sim", type=int, default=10)
    ap.add_argument("--trees", type=int, default=40)
    ap.add_argument("--json", help="write the replications and the summary to this file")
    args = ap.parse_args()
    with ProcessPoolExecutor(args.workers) as ex:
        rows = list(ex.map(one, range(args.reps), [args.n_sim] * args.reps, [args.trees] * args.reps))
    s = summarize(rows)
    report(s)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump({"summary": s, "settings": vars(args), "replications": rows}, fh, indent=1)


if __name__ == "__main__":
    main()
