"""Issue 16's "Wide" case: MovieLens-shaped crossed designs, ``rating ~ 1 + (1 | user) + (1 | movie)``.

Data from :mod:`movielens_shape` (the counts of ml-32m's filtered sets). Two parts:

* ``--fit``: ``multilevel.fit`` on the ratings in memory (users the first block, the
  movies' dense block updated by the scattered Schur form,
  :mod:`multilevel.linalg.scatter_schur`), timed, with its evaluations, the time per
  evaluation and the process's peak memory; for ``--scale`` below 1 (the full shape's
  dense cross-products do not fit the issue's 3.4 GiB yet: see the README).
* ``--evaluation``: one evaluation of the profiled criterion at the full shape, timed by
  its parts: the Schur update scattered into the dense movie block (the pairs of movies
  each user rated) and the dense Cholesky factor of that block (LAPACK ``dpotrf``), with
  the block's memory. MixedModels.jl's published figure for the same shape is 45 s per
  evaluation on 16 threads (42 evaluations, 1,945 s).

    python benchmarks/bench_wide.py --shape 50-80 --scale 0.25 --fit
    python benchmarks/bench_wide.py --shape 50-80 --evaluation
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import movielens_shape
from common import emit, gib, peak_rss

FORMULA = "rating ~ 1 + (1 | user) + (1 | movie)"
MIXEDMODELS_JL = {"50-80": (45.0, 42, 1945.0), "5-20": (263.0, 33, 8947.0), "1-20": (1604.0, 29, 48128.0)}


def fit(d: dict[str, np.ndarray]) -> dict:
    import pandas as pd

    import multilevel

    df = pd.DataFrame(
        {"rating": d["rating"], "user": pd.Categorical(d["user"]), "movie": pd.Categorical(d["movie"])}
    )
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = multilevel.fit(FORMULA, df, reml=False)
    took = time.perf_counter() - t0
    obj = m.objective
    t1 = time.perf_counter()
    obj(np.asarray(m.theta) * 1.01)
    per_eval = time.perf_counter() - t1
    return {
        "fit_s": round(took, 1),
        "optimizer_s": round(m.optinfo.seconds, 1),
        "evaluations": m.optinfo.n_evals,
        "seconds_per_evaluation": round(per_eval, 2),
        "schur_form": type(obj.system.pattern).__name__,
        "deviance": m.deviance,
        "theta": [round(float(t), 6) for t in m.theta],
        "sigma": round(float(m.sigma), 6),
        "converged": bool(m.optinfo.converged),
        "peak_gib": gib(peak_rss()),
    }


def evaluation(d: dict[str, np.ndarray], shape: str) -> dict:
    """One evaluation's two costs at the data's full shape, from the cross-tabulation."""
    import scipy.sparse as sp

    from multilevel.linalg.blocked import dense_cholesky
    from multilevel.linalg.scatter_schur import ScatterSchur, _scatter

    users, movies = int(d["user"].max()) + 1, int(d["movie"].max()) + 1
    n_u = np.bincount(d["user"], minlength=users).astype(float)
    n_m = np.bincount(d["movie"], minlength=movies).astype(float)
    m = movies + 2  # the movies, the intercept, the response
    y_u = np.bincount(d["user"], weights=d["rating"].astype(float), minlength=users)
    t0 = time.perf_counter()
    rows = np.concatenate([d["user"].astype(np.int64), np.arange(users), np.arange(users)])
    cols = np.concatenate([d["movie"].astype(np.int64), np.full(users, movies), np.full(users, movies + 1)])
    vals = np.concatenate([np.ones(d["user"].size), n_u, y_u])
    A1R = sp.csr_matrix((vals, (rows, cols)), shape=(users, m))
    form = ScatterSchur.build(A1R)
    t_build = time.perf_counter() - t0
    del rows, cols, vals
    theta = np.array([0.5, 0.55])
    W = (theta[0] ** 2 / (theta[0] ** 2 * n_u + 1.0))[:, None, None]
    s = np.concatenate([np.full(movies, theta[1]), [1.0, 1.0]])
    ScatterSchur.build(A1R[:50]).update(W[:50])  # Numba's compilation, outside the timing
    t1 = time.perf_counter()
    G = np.zeros((m, m))
    w_scaled = -W[:, 0, 0]
    data = form.data * s[form.indices]
    _scatter(form.indptr, form.indices, data, w_scaled, form.bounds, G)
    t_scatter = time.perf_counter() - t1
    G[np.arange(movies), np.arange(movies)] += theta[1] ** 2 * n_m + 1.0
    G[movies, movies] += d["user"].size
    G[movies + 1, movies + 1] += float(np.sum(d["rating"].astype(float) ** 2))
    G[np.arange(movies), movies] += theta[1] * n_m
    G[movies, movies + 1] += float(d["rating"].sum())
    y_m = np.bincount(d["movie"], weights=d["rating"], minlength=movies)
    G[np.arange(movies), movies + 1] += theta[1] * y_m
    t2 = time.perf_counter()
    dense_cholesky(G)
    t_chol = time.perf_counter() - t2
    jl = MIXEDMODELS_JL[shape]
    return {
        "users": users,
        "movies": movies,
        "pairs": form.pairs,
        "prepare_s": round(t_build, 1),
        "scatter_s": round(t_scatter, 2),
        "cholesky_s": round(t_chol, 2),
        "evaluation_s": round(t_scatter + t_chol, 2),
        "dense_block_gib": round(m * m * 8 / 2**30, 2),
        "peak_gib": gib(peak_rss()),
        "mixedmodels_jl_s_per_evaluation": jl[0],
        "mixedmodels_jl_evaluations": jl[1],
        "mixedmodels_jl_fit_s": jl[2],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(movielens_shape.SHAPES), default="50-80")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--fit", action="store_true")
    ap.add_argument("--evaluation", action="store_true")
    ap.add_argument("--out", default=None, help="append the JSON record to this file")
    args = ap.parse_args()
    t0 = time.perf_counter()
    d = movielens_shape.generate(args.shape, args.scale)
    out: dict = {"shape": args.shape, "scale": args.scale, "generate_s": round(time.perf_counter() - t0, 1)}
    out.update(movielens_shape.stats(d))
    if args.evaluation:
        out["evaluation"] = evaluation(d, args.shape)
    if args.fit:
        out["fit"] = fit(d)
    emit(out, args.out)


if __name__ == "__main__":
    main()
