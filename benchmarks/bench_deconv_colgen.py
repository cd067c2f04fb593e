"""cvxpy + Clarabel with column generation (issue 15's peer) against the NPMLE, side by side.

The REBayes vignette's mixture (0 for 90% of rows, 2 for 10%, plus N(0, 1) noise).
Clarabel solves the homogeneous program on a growing subset of grid columns (every
10th to start), and the 20 worst violators of D <= 1 + 1e-9 on the whole grid join
each round, until there are none. Needs ``cvxpy`` and ``clarabel`` importable
(``pip install cvxpy clarabel``; not a dependency of the package).

    python benchmarks/bench_deconv_colgen.py N[,N...] M[,M...]   # e.g. 10000,100000 300,1000

One JSON line per (n, m): both times, both log-likelihoods, the rounds and the speed-up.
"""

import json
import sys
import time

import cvxpy as cp
import numpy as np

from multilevel.deconv import npmle
from multilevel.deconv.data import make_grid, prepare_data
from multilevel.deconv.kernels import get_kernel
from multilevel.deconv.problem import Problem


def colgen(y, m, tol=1e-9, max_rounds=40):
    """Seconds, log-likelihood, rounds and max D of the column-generation solve."""
    t0 = time.perf_counter()
    kernel = get_kernel("gaussian")
    data = prepare_data(kernel, y)
    grid = make_grid(kernel, data, m)
    pr = Problem.from_log_density(kernel.log_density(data.rows_y, data.rows_scale, grid), data.rows_weight)
    cols = np.unique(np.r_[np.arange(0, m, 10), m - 1])
    rounds = 0
    while rounds < max_rounds:
        rounds += 1
        f = cp.Variable(cols.size, nonneg=True)
        obj = cp.Maximize(pr.v @ cp.log(pr.At[:, cols] @ f) - cp.sum(f))
        cp.Problem(obj).solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
        w = np.zeros(m)
        w[cols] = np.maximum(np.asarray(f.value), 0.0)
        w /= w.sum()
        D = pr.gradient(w)
        viol = np.flatnonzero(D > 1 + tol)
        if viol.size == 0:
            break
        new = np.setdiff1d(viol[np.argsort(-D[viol])][:20], cols)
        if new.size == 0:
            break
        cols = np.union1d(cols, new)
    return time.perf_counter() - t0, pr.loglik(w), rounds, float(D.max())


def main() -> None:
    rng = np.random.default_rng(20261201)
    for n in [int(a) for a in sys.argv[1].split(",")]:
        theta = rng.permutation(np.repeat([0.0, 2.0], [n * 9 // 10, n // 10]))
        y = theta + rng.normal(size=n)
        for m in [int(a) for a in sys.argv[2].split(",")]:
            t = time.perf_counter()
            fit = npmle(y, grid=m)
            ours = time.perf_counter() - t
            sec, ll, rounds, dmax = colgen(y, m)
            row = {"n": n, "m": m, "ours_seconds": ours, "ours_loglik": fit.loglik}
            row.update(colgen_seconds=sec, colgen_loglik=ll, rounds=rounds, colgen_kkt_max=dmax)
            row["speedup"] = sec / ours
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
