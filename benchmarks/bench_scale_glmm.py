"""Issue 16's "GLMM on Dask" case: a binomial GLMM fitted from Parquet files on a LocalCluster.

VerbAgg's shape made tall: binary responses of ``--subjects`` subjects to ``--items``
items (each row a random subject and item, so the two factors are crossed and
unbalanced), three fixed covariates, effects SD 1 (subjects) and 0.5 (items); the model

    r ~ x1 + x2 + x3 + (1 | subject) + (1 | item)

is fitted from the files on a ``LocalCluster`` of two worker processes with a 4 GiB
memory limit each (the rows read once and kept on the workers, one pass per PIRLS
step), and in memory on the same rows (read into pandas). Reported: both fits' times,
the passes over the rows and the time per pass, the peak resident memory of each
worker and of the client, whether a worker was restarted, and the two
log-likelihoods' relative difference (the issue asks 1e-6).

    python benchmarks/bench_scale_glmm.py --rows 1000000
    python benchmarks/bench_scale_glmm.py --rows 10000000 --out benchmarks/scale_glmm_results.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from common import emit, gib, peak_rss

FORMULA = "r ~ x1 + x2 + x3 + (1 | subject) + (1 | item)"
BETA = (-0.3, 0.5, -0.4, 0.25)
SDS = (1.0, 0.5)


def generate(
    folder: Path, rows: int, rows_per_file: int, subjects: int, items: int, seed: int = 16
) -> list[Path]:
    """Write ``rows`` rows as Parquet files of ``rows_per_file`` rows (skipped if present)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "rows.json"
    record = {"rows": rows, "per_file": rows_per_file, "subjects": subjects, "items": items}
    n_files = -(-rows // rows_per_file)
    files = [folder / f"part-{i:05d}.parquet" for i in range(n_files)]
    if marker.exists() and json.loads(marker.read_text()) == record:
        return files
    rng = np.random.default_rng(seed)
    b_s, b_i = rng.normal(0, SDS[0], subjects), rng.normal(0, SDS[1], items)
    for i, path in enumerate(files):
        n = min(rows_per_file, rows - i * rows_per_file)
        s, it = rng.integers(0, subjects, n).astype(np.int32), rng.integers(0, items, n).astype(np.int32)
        x = rng.normal(size=(n, 3))
        eta = BETA[0] + x @ np.array(BETA[1:]) + b_s[s] + b_i[it]
        r = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(np.float64)
        cols = {"subject": s, "item": it, "x1": x[:, 0], "x2": x[:, 1], "x3": x[:, 2], "r": r}
        pq.write_table(pa.table(cols), path)
    marker.write_text(json.dumps(record))
    return files


def dask_fit(files: list[Path]) -> tuple[object, float]:
    import multilevel

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cluster's own warnings (e.g. large graphs)
        m = multilevel.fit(FORMULA, [str(f) for f in files], family="binomial", progress=sys.stderr.isatty())
    return m, time.perf_counter() - t0


def in_memory(files: list[Path]) -> dict:
    import pandas as pd

    import multilevel

    t0 = time.perf_counter()
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    t_read = time.perf_counter() - t0
    m = multilevel.fit(FORMULA, df, family="binomial")
    t = time.perf_counter() - t0
    return {"rows": len(df), "read_s": round(t_read, 2), "fit_s": round(t - t_read, 2), "fit": m}


def run(args: argparse.Namespace) -> dict:
    from distributed import Client, LocalCluster

    files = generate(Path(args.dir), args.rows, args.rows_per_file, args.subjects, args.items)
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, memory_limit="4GiB", processes=True, dashboard_address=":0"
    )
    client = Client(cluster)
    try:
        workers0 = set(client.scheduler_info()["workers"])
        m, t_fit = dask_fit(files)
        passes = m.problem.rows.passes  # type: ignore[attr-defined]
        workers1 = set(client.scheduler_info()["workers"])
        peaks = client.run(peak_rss)
    finally:
        client.close()
        cluster.close()
    opt = m.optinfo  # type: ignore[attr-defined]
    out = {
        "rows": args.rows,
        "files": len(files),
        "subjects": args.subjects,
        "items": args.items,
        "dask_fit_s": round(t_fit, 2),
        "passes": passes,
        "seconds_per_pass": round(t_fit / passes, 3),
        "evaluations": opt.n_evals,
        "converged": bool(opt.converged),
        "loglik": m.loglik,  # type: ignore[attr-defined]
        "theta": [round(float(t), 6) for t in m.theta],  # type: ignore[attr-defined]
        "fixef": [round(float(b), 6) for b in m.fixef],  # type: ignore[attr-defined]
        "worker_peak_gib": sorted(gib(v) for v in peaks.values()),
        "workers_restarted": workers0 != workers1,
    }
    if not args.no_check:
        ref = in_memory(files)
        out["in_memory"] = {k: v for k, v in ref.items() if k != "fit"}
        out["in_memory"]["loglik"] = ref["fit"].loglik
        out["in_memory"]["converged"] = bool(ref["fit"].optinfo.converged)
        out["loglik_rel_diff"] = abs(ref["fit"].loglik / m.loglik - 1)  # type: ignore[attr-defined]
        out["client_peak_gib_with_in_memory_fit"] = gib(peak_rss())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rows-per-file", type=int, default=1_000_000)
    ap.add_argument("--subjects", type=int, default=100_000)
    ap.add_argument("--items", type=int, default=100)
    ap.add_argument("--no-check", action="store_true", help="no in-memory fit")
    ap.add_argument("--dir", default=None, help="where the Parquet files go (default /tmp/tall-glmm-<rows>)")
    ap.add_argument("--keep", action="store_true", help="keep the files afterwards")
    ap.add_argument("--out", default=None, help="append the JSON record to this file")
    args = ap.parse_args()
    args.dir = args.dir or f"/tmp/tall-glmm-{args.rows}"
    try:
        out = run(args)
    finally:
        if not args.keep:
            shutil.rmtree(args.dir, ignore_errors=True)
    emit(out, args.out)


if __name__ == "__main__":
    main()
