"""Issue 16's "Wide" case: MovieLens-shaped crossed designs, ``rating ~ 1 + (1 | user) + (1 | movie)``.

Data from :mod:`movielens_shape` (the counts of ml-32m's filtered sets). Two parts:

* ``--fit``: ``multilevel.fit`` on the ratings in memory (users the first block, the
  movies' dense block updated by the scattered Schur form,
  :mod:`multilevel.linalg.scatter_schur`), timed, with its evaluations, the time per
  evaluation and the fit's peak memory: from the table built on (the generator's own
  arrays freed first and its peak left out, Linux's ``clear_refs``), so the figure is
  what a user holding the table sees.
* ``--evaluation``: one evaluation of the profiled criterion at the full shape, timed by
  its parts: the Schur update scattered into the movie block (the pairs of movies
  each user rated), kept in packed storage (:mod:`multilevel.linalg.rfp`), and its
  Cholesky factor in place (tiles of 4,096 on the packed halves), with the block's memory.
  MixedModels.jl's published figure for the same shape is 45 s per
  evaluation on 16 threads (42 evaluations, 1,945 s).

``--device gpu`` (or ``--backend jax`` on the CPU) runs both on the JAX backend
(:mod:`multilevel.linalg.jax_wide`): the block formed and factored in the device's
memory. The all-movies shape's 84,432-wide block is 57 GB: on a GPU, let JAX use more
than its default 75% of the device (``XLA_PYTHON_CLIENT_MEM_FRACTION=0.95``).

    python benchmarks/bench_wide.py --shape 50-80 --scale 0.25 --fit
    python benchmarks/bench_wide.py --shape 50-80 --evaluation
    XLA_PYTHON_CLIENT_MEM_FRACTION=0.95 \
        python benchmarks/bench_wide.py --shape 1-20 --device gpu --evaluation --fit
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


def fit(df: Any, device: str = "cpu", backend: str = "auto") -> dict:
    import multilevel

    before = gib(peak_rss())
    reset = reset_peak()  # the fit's own peak, from the table on (not the generator's)
    control = multilevel.FitControl(device=device, backend=backend)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = multilevel.fit(FORMULA, df, reml=False, control=control)
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
        "schur_form": type(obj.pattern).__name__ if obj.pattern is not None else "jax_wide tiles",
        "optimizer": m.optinfo.optimizer,
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
    from multilevel.linalg.crossprod import scalar_crossprods
    from multilevel.linalg.rfp import factor_packed
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
    factor_packed(G)
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
        "packed_block_gib": round((G.zz.size + G.border.size) * 8 / 2**30, 2),
        "dense_block_gib": round(G.shape[0] ** 2 * 8 / 2**30, 2),
        "peak_gib": gib(peak_rss()),
        "mixedmodels_jl_s_per_evaluation": jl[0],
        "mixedmodels_jl_evaluations": jl[1],
        "mixedmodels_jl_fit_s": jl[2],
    }


def evaluation_jax(d: dict[str, np.ndarray], device: str) -> dict:
    """One evaluation on the JAX backend (what ``device="gpu"`` runs): the first (compiling
    every tile size) and a warm one, the warm one by its parts: the block formed and the
    pairs scattered into it, and the tiled Cholesky factor."""
    import jax

    from multilevel.linalg import jax_wide
    from multilevel.linalg.crossprod import scalar_crossprods
    from multilevel.linalg.jax_cholesky import tiled_cholesky
    from multilevel.linalg.jax_setup import jax_device

    users, movies = int(d["user"].max()) + 1, int(d["movie"].max()) + 1
    n = d["user"].size
    one = np.broadcast_to(1.0, (n, 1))
    dev = jax_device(device)
    t0 = time.perf_counter()
    cp = scalar_crossprods(
        [(d["user"], one), (d["movie"], one)], [users, movies], one, d["rating"].astype(float), None
    )
    system = jax_wide.system(cp, dev)
    t_build = time.perf_counter() - t0
    Ts = [np.array([[0.5]]), np.array([[0.55]])]
    t1 = time.perf_counter()
    jax_wide.factor(system, Ts, keep=False)
    first = time.perf_counter() - t1
    t2 = time.perf_counter()
    G, _, _ = jax_wide.form_block(system, Ts)
    G.block_until_ready()
    t_scatter = time.perf_counter() - t2
    t3 = time.perf_counter()
    L = tiled_cholesky(G)
    L.block_until_ready()
    t_chol = time.perf_counter() - t3
    del L
    stats = dev.memory_stats() or {}
    return {
        "device": f"{dev.platform} {getattr(dev, 'device_kind', '')}".strip(),
        "jax": jax.__version__,
        "users": users,
        "movies": movies,
        "pairs_scattered": int(sum(np.asarray(g.a).size * jax_wide.tile_pairs(g) for g in system.groups)),
        "tile_sizes": len(system.groups),
        "prepare_s": round(t_build, 1),
        "first_evaluation_s": round(first, 2),
        "scatter_s": round(t_scatter, 2),
        "cholesky_s": round(t_chol, 2),
        "evaluation_s": round(t_scatter + t_chol, 2),
        "dense_block_gib": round(cp.layout.m**2 * 8 / 2**30, 2),
        "device_peak_gib": round(stats["peak_bytes_in_use"] / 2**30, 2)
        if "peak_bytes_in_use" in stats
        else None,
        "peak_gib": gib(peak_rss()),
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
    ap.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    ap.add_argument("--backend", choices=["auto", "numpy", "jax"], default="auto")
    ap.add_argument("--out", default=None, help="append the JSON record to this file")
    args = ap.parse_args()
    out: dict = {"shape": args.shape, "scale": args.scale, "device": args.device, "backend": args.backend}
    d = generated(args.shape, args.scale, out)
    jax_path = args.device == "gpu" or args.backend == "jax"
    if args.evaluation:
        out["evaluation"] = evaluation_jax(d, args.device) if jax_path else evaluation(d, args.shape)
        out["evaluation"]["mixedmodels_jl_s_per_evaluation"] = MIXEDMODELS_JL[args.shape][0]
    if args.fit:
        df = frame(d)
        d.clear()  # the generator's arrays: the fit's input is the table alone, as a user's
        out["fit"] = fit(df, args.device, args.backend)
        out["fit"]["mixedmodels_jl_fit_s"] = MIXEDMODELS_JL[args.shape][2]
    emit(out, args.out)


if __name__ == "__main__":
    main()
