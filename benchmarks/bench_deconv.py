"""NPMLE benchmark: our interior point + active set against plain EM, and Clarabel's recorded times.

On each reference problem of tests/data/deconv/ (grids of 300 and 1000 points)
and on the REBayes vignette's 0/2 mixture at n = 10^4: median wall time of
``npmle`` (data in, result out), its log-likelihood minus the reference's and its
certificate max D - 1; EM after 1000 iterations (time, log-likelihood gap). The
Clarabel columns are the reference files' own timings (cvxpy + Clarabel, one-shot
and column generation, same 2-core machine class), not rerun here unless cvxpy
and clarabel are importable (``--clarabel``).

    python benchmarks/bench_deconv.py [--reps N] [--json out.json] [--clarabel]
        [--vignette-n 10000 100000 1000000]

Last run (deconv_results.json): 3 reps, --clarabel (cvxpy 1.9.3, Clarabel 0.11.1),
--vignette-n 10000 100000 1000000, a loaded 2-core machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from common import timed

from multilevel.deconv import npmle, npmle_em

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "deconv"
PROBLEMS = ["gauss_a_n1000", "gauss_b_n1000", "poisson_d_n50000"]


def clarabel_solve(y: np.ndarray, family: str, m: int) -> tuple[float, float]:
    """One-shot cvxpy + Clarabel on the whole grid (homogeneous form): seconds and logLik.

    The raw solution, renormalized to sum 1, without the references' polish.
    """
    import cvxpy as cp

    from multilevel.deconv.data import make_grid, prepare_data
    from multilevel.deconv.kernels import get_kernel
    from multilevel.deconv.problem import Problem

    t0 = time.perf_counter()
    kernel = get_kernel(family)
    data = prepare_data(kernel, y)
    grid = make_grid(kernel, data, m)
    problem = Problem.from_log_density(
        kernel.log_density(data.rows_y, data.rows_scale, grid), data.rows_weight
    )
    f = cp.Variable(m, nonneg=True)
    objective = cp.Maximize(problem.v @ cp.log(problem.At @ f) - cp.sum(f))
    tol = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}  # the references' settings
    cp.Problem(objective).solve(solver=cp.CLARABEL, **tol)
    w = np.maximum(np.asarray(f.value), 0.0)
    return time.perf_counter() - t0, problem.loglik(w / w.sum())


def reference_rows(reps: int, with_clarabel: bool) -> list[dict]:
    rows = []
    for problem in PROBLEMS:
        ref = json.loads((DATA / f"npmle_{problem}.json").read_text())
        y = pd.read_csv(DATA / ref["data_file"]).iloc[:, 0].to_numpy(float)
        for m in ("300", "1000"):
            R = ref["grids"][m]
            sec, fit = timed(lambda y=y, ref=ref, m=m: npmle(y, family=ref["family"], grid=int(m)), reps)
            em = npmle_em(y, family=ref["family"], grid=int(m), iterations=1000)
            row = {
                "problem": problem,
                "m": int(m),
                "seconds": sec,
                "loglik_minus_ref": fit.loglik - R["logLik"],
                "kkt_max_minus_1": fit.kkt_max - 1,
                "atoms": int(fit.support.shape[0]),
                "em1000_seconds": em.seconds,
                "em1000_gap": fit.loglik - em.loglik,
                "ref_clarabel_full_seconds": R["clarabel_full"]["wall_seconds"],
                "ref_clarabel_colgen_seconds": R["clarabel_column_generation"]["seconds"],
            }
            if with_clarabel:
                row["clarabel_seconds"], ll = clarabel_solve(y, ref["family"], int(m))
                row["clarabel_loglik_minus_ref"] = ll - R["logLik"]
            rows.append(row)
    return rows


def oracle_and_js(y: np.ndarray, theta: np.ndarray) -> tuple[float, float]:
    """Empirical MSE of the Bayes rule under the true 0.9 delta_0 + 0.1 delta_2 prior, and of James-Stein."""
    log0 = np.log(0.9) - 0.5 * y**2
    log2 = np.log(0.1) - 0.5 * (y - 2.0) ** 2
    oracle = 2.0 / (1.0 + np.exp(log0 - log2))
    # positive-part James-Stein toward the grand mean, sigma = 1
    r = y - y.mean()
    js = y.mean() + max(0.0, 1.0 - (y.size - 3) / float(r @ r)) * r
    return float(np.mean((oracle - theta) ** 2)), float(np.mean((js - theta) ** 2))


def vignette_rows(reps: int, sizes: tuple[int, ...], with_clarabel: bool) -> list[dict]:
    """The REBayes vignette's mixture; EM only up to n = 10^5 (10^6 x 1000 EM steps: minutes);
    Clarabel (``--clarabel``) only at n <= 10^4 on the 300-point grid (about a minute)."""
    rows = []
    rng = np.random.default_rng(20261201)
    for n in sizes:
        theta = rng.permutation(np.repeat([0.0, 2.0], [n * 9 // 10, n // 10]))
        y = theta + rng.normal(size=n)
        oracle_mse, js_mse = oracle_and_js(y, theta)
        for m in (300, 1000):
            sec, fit = timed(lambda y=y, m=m: npmle(y, grid=m), reps)
            row = {
                "problem": f"vignette_0_2_n{n}",
                "m": m,
                "seconds": sec,
                "binned": fit.binned,
                "rows": fit.rows,
                "loglik": fit.loglik,
                "kkt_max_minus_1": fit.kkt_max - 1,
                "atoms": int(fit.support.shape[0]),
                "npmle_mse": float(np.mean((fit.posterior_mean() - theta) ** 2)),
                "oracle_mse": oracle_mse,
                "james_stein_mse": js_mse,
            }
            if n <= 100_000:
                em = npmle_em(y, grid=m, iterations=1000)
                row["em1000_seconds"], row["em1000_gap"] = em.seconds, fit.loglik - em.loglik
            if with_clarabel and n <= 10_000 and m == 300:
                row["clarabel_seconds"], ll = clarabel_solve(y, "gaussian", m)
                row["clarabel_loglik_minus_ours"] = ll - fit.loglik
            rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--json", help="write the results to this file")
    ap.add_argument("--clarabel", action="store_true", help="also run cvxpy + Clarabel (if installed)")
    ap.add_argument("--vignette-n", type=int, nargs="*", default=[10_000])
    args = ap.parse_args()
    rows = reference_rows(args.reps, args.clarabel) + vignette_rows(
        max(1, args.reps // 2), tuple(args.vignette_n), args.clarabel
    )
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
