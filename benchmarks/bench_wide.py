"""Issue 16's "Wide" case: MovieLens-shaped crossed designs, ``rating ~ 1 + (1 | user) + (1 | movie)``.

Data from :mod:`movielens_shape` (the counts of ml-32m's filtered sets). Two parts:

* ``--fit``: ``multilevel.fit`` on the ratings in memory (users the first block, the
  movies' dense block updated by the scattered Schur form,
  :mod:`multilevel.linalg.scatter_schur`), timed, with its evaluations, the time per
  evaluation and the fit's peak memory: from the table built on (the generator's own
  arrays freed first and its peak left out, Linux's ``clear_refs``), so the figure is
  what a user holding the table sees.
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
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import movielens_shape
from common import emit, gib, peak_rss, reset_peak

FORMULA = "rating ~ 1 + (1 | user) + (1 | movie)"
MIXEDMODELS_JL = {"50-80": (45.0, 42, 1945.0), "5-20": (263.0, 33, 8947.0), "1-20": (1604.0, 29, 48128.0)}


def frame(d: dict[str, np.ndarray]) -> Any:
    """The ratings as a user has them: a table with the two factors as categoricals."""
    import pandas as pd

    return pd.DataFrame(
        {"rating": d["rating"], "user": pd.Categorical(d["user"]), "movie": pd.Categorical(d["movie"])}
    )


def fit(df: Any) -> dict:
    import multilevel

    before = gib(peak_rss())
    reset = reset_peak()  # the fit's own peak, from the table on (not the generator's)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = multilevel.fit(FORMULA, df, reml=False)
    took = time.perf_counter() - t0
    peak = gib(peak_rss())  # the fit's: its result holds the factor at the optimum (one block)
    obj = m.objective
    t1 = time.perf_counter()
    obj(np.asarray(m.theta) * 1.01)  # a second block beside the result's, for this timing only
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
        "peak_gib": peak,
        "peak_with_one_more_evaluation_gib": gib(peak_rss()),
        "peak_from": "the table built (generator's peak left out)" if reset else "the process's start",
        "peak_before_fit_gib": before,
    }


def evaluation(d: dict[str, np.ndarray], shape: str) -> dict:
    """One evaluation's two costs at the data's full shape, through the fit's own steps:
    the compiled cross-product pass, the scattered form, the block formed in the factor's
    memory (:func:`~multilevel.linalg.wide.wide_factor_block`), its Cholesky factor."""
    from multilevel.linalg.blocked import dense_cholesky
    from multilevel.linalg.crossprod import scalar_crossprods
    from multilevel.linalg.scatter_schur import ScatterSchur
    from multilevel.linalg.wide import WIDE_MIN_REST, wide_factor_block

    users, movies = int(d["user"].max()) + 1, int(d["movie"].max()) + 1
    if movies < WIDE_MIN_REST:
        raise SystemExit(
            f"--evaluation times the wide layout, which needs {WIDE_MIN_REST:,} movies or more; "
            f"this --scale gives {movies:,}: use a larger --scale (or --fit)"
        )
    n = d["user"].size
    one = np.broadcast_to(1.0, (n, 1))
    t0 = time.perf_counter()
    cp = scalar_crossprods(
        [(d["user"], one), (d["movie"], one)], [users, movies], one, d["rating"].astype(float), None
    )
    form = ScatterSchur.build(cp.A1R)
    t_build = time.perf_counter() - t0
    theta = np.array([0.5, 0.55])
    n_u = cp.A11[:, 0, 0]
    W1 = (theta[0] ** 2 / (theta[0] ** 2 * n_u + 1.0))[:, None, None]
    s = np.concatenate([np.full(movies, theta[1]), [1.0, 1.0]])
    few = WIDE_MIN_REST  # the fewest movies that keep the wide layout
    small = scalar_crossprods(
        [(np.arange(3), one[:3]), (np.arange(3), one[:3])], [3, few], one[:3], np.ones(3), None
    )
    wide_factor_block(
        small.ARR, np.ones(few + 2), ScatterSchur.build(small.A1R), np.ones((3, 1, 1))
    )  # compile
    t1 = time.perf_counter()
    G = wide_factor_block(cp.ARR, s, form, W1)
    t_scatter = time.perf_counter() - t1
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
        "dense_block_gib": round(G.size * 8 / 2**30, 2),
        "peak_gib": gib(peak_rss()),
        "mixedmodels_jl_s_per_evaluation": jl[0],
        "mixedmodels_jl_evaluations": jl[1],
        "mixedmodels_jl_fit_s": jl[2],
    }


def generated(shape: str, scale: float, out: dict) -> dict[str, np.ndarray]:
    """The ratings, made in a child process and read back from ``.npy`` files: the
    generator's own allocations (a hundred thousand small arrays) would otherwise stay in
    this process's heap and in the fit's memory figure. ``out`` gets the generator's
    time and the data's statistics."""
    import json
    import subprocess
    import tempfile

    script = (
        "import sys, time, json, numpy as np; sys.path.insert(0, sys.argv[1]); import movielens_shape as g; "
        "t = time.perf_counter(); d = g.generate(sys.argv[2], float(sys.argv[3])); "
        "s = {**g.stats(d), 'generate_s': round(time.perf_counter() - t, 1)}; "
        "[np.save(f'{sys.argv[4]}/{k}.npy', v) for k, v in d.items()]; print(json.dumps(s))"
    )
    with tempfile.TemporaryDirectory() as tmp:
        here = str(Path(__file__).resolve().parent)
        done = subprocess.run(
            [sys.executable, "-c", script, here, shape, str(scale), tmp],
            check=True,
            capture_output=True,
            text=True,
        )
        out.update(json.loads(done.stdout.strip().splitlines()[-1]))
        return {k: np.load(f"{tmp}/{k}.npy") for k in ("user", "movie", "rating")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(movielens_shape.SHAPES), default="50-80")
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--fit", action="store_true")
    ap.add_argument("--evaluation", action="store_true")
    ap.add_argument("--out", default=None, help="append the JSON record to this file")
    args = ap.parse_args()
    out: dict = {"shape": args.shape, "scale": args.scale}
    d = generated(args.shape, args.scale, out)
    if args.evaluation:
        out["evaluation"] = evaluation(d, args.shape)
    if args.fit:
        df = frame(d)
        d.clear()  # the generator's arrays: the fit's input is the table alone, as a user's
        out["fit"] = fit(df)
    emit(out, args.out)


if __name__ == "__main__":
    main()
