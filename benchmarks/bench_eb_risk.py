"""Empirical Bayes risk in simulation: NPMLE, g-model, James-Stein and normal-normal
against the oracle Bayes rule (issue 15).

Two priors, n = 10^5 (``--quick``: 10^4), y_i = theta_i + N(0, 1):

* two-point: theta = 0 with probability 0.9, 2 with 0.1 (REBayes' vignette mixture);
* normal-plus-spike: theta = 0 with probability 0.8, N(2, 1) with 0.2.

For each: the mean squared error of every rule's posterior means against the true
theta, and the oracle's (the posterior mean under the true prior, by exact sums or
quadrature), with the seconds each estimate took. Writes ``eb_risk_results.json``.

    python benchmarks/bench_eb_risk.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def oracle_mean(y: np.ndarray, prior: str) -> np.ndarray:
    """E[theta | y] under the true prior."""
    phi = lambda z: np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi)  # noqa: E731
    if prior == "two-point":
        a, b = 0.9 * phi(y), 0.1 * phi(y - 2.0)
        return 2.0 * b / (a + b)
    # spike at 0 (0.8) and N(2, 1) (0.2): the slab's marginal is N(2, 2), its posterior mean (y + 2) / 2
    spike = 0.8 * phi(y)
    slab = 0.2 * phi((y - 2.0) / np.sqrt(2.0)) / np.sqrt(2.0)
    return slab * (y + 2.0) / 2.0 / (spike + slab)


def simulate(prior: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    if prior == "two-point":
        theta = np.where(rng.random(n) < 0.9, 0.0, 2.0)
    else:
        theta = np.where(rng.random(n) < 0.8, 0.0, rng.normal(2.0, 1.0, n))
    return theta, theta + rng.standard_normal(n)


def run(prior: str, n: int, seed: int) -> dict:
    import multilevel
    from multilevel.deconv.parametric import james_stein, normal_normal

    rng = np.random.default_rng(seed)
    theta, y = simulate(prior, n, rng)
    rows: dict[str, dict] = {}

    def record(name: str, fn) -> None:
        t0 = time.perf_counter()
        est = fn()
        rows[name] = {"mse": float(np.mean((est - theta) ** 2)), "seconds": time.perf_counter() - t0}

    record("oracle", lambda: oracle_mean(y, prior))
    record("npmle (300-point grid)", lambda: multilevel.deconvolve(y, 1.0, method="npmle").posterior_mean())
    record("g-model (df 5)", lambda: multilevel.deconvolve(y, 1.0, method="gmodel").posterior_mean())
    record("James-Stein", lambda: james_stein(y).posterior_mean)
    record("normal-normal (ML)", lambda: normal_normal(y, 1.0, "ml").posterior_mean)
    record("raw y (MLE)", lambda: y)
    oracle = rows["oracle"]["mse"]
    for r in rows.values():
        r["ratio_to_oracle"] = r["mse"] / oracle
    return {"prior": prior, "n": n, "seed": seed, "rules": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="n = 10^4")
    args = ap.parse_args()
    n = 10_000 if args.quick else 100_000
    results = [run(p, n, seed) for seed, p in enumerate(("two-point", "normal-plus-spike"), start=15)]
    for res in results:
        print(f"\n{res['prior']} prior, n = {res['n']}\n")
        print("| rule | MSE | / oracle | seconds |")
        print("|---|---:|---:|---:|")
        for name, r in res["rules"].items():
            print(f"| {name} | {r['mse']:.5f} | {r['ratio_to_oracle']:.4f} | {r['seconds']:.2f} |")
    out = HERE / ("eb_risk_results_quick.json" if args.quick else "eb_risk_results.json")
    out.write_text(json.dumps(results, indent=2))
    print(f"\nwritten {out}")


if __name__ == "__main__":
    main()
