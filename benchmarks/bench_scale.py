"""Issue 16's "Tall" case: an LMM fitted from Parquet files on a Dask LocalCluster.

Three crossed factors (10^4, 2 x 10^3 and 10^2 levels), three fixed covariates and y,
written as Parquet files of ``--rows-per-file`` rows; the model

    y ~ x1 + x2 + x3 + (1 | f1) + (1 | f2) + (1 | f3)

is fitted from the files on a ``LocalCluster`` of two worker processes with a 4 GiB
memory limit each (``multilevel.fit(formula, "dir/*.parquet")``), and timed against one
Dask pass that only sums ``y`` over the same files, and against one that reads and sums
all seven columns the model uses (the least any fit that reads the rows costs).
Reported: the fit's time split into
its two data passes and the optimization, the time of one evaluation of the objective,
the peak resident memory of each worker and of the client, whether a worker was
restarted (over its limit), and the criterion of an in-memory ``fit`` on the first
``--check-rows`` rows (the same files read into pandas) against the Dask fit of the same
rows.

    python benchmarks/bench_scale.py --rows 1000000
    python benchmarks/bench_scale.py --rows 10000000 --dir /tmp/tall
    python benchmarks/bench_scale.py --rows 100000000 --check-rows 10000000
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

FORMULA = "y ~ x1 + x2 + x3 + (1 | f1) + (1 | f2) + (1 | f3)"
LEVELS = (10_000, 2_000, 100)
SDS = (1.0, 0.5, 0.3)  # of the three factors' effects; the residual SD is 1
BETA = (1.0, 0.5, -0.3, 0.2)
COLUMNS = ["f1", "f2", "f3", "x1", "x2", "x3", "y"]


def generate(folder: Path, rows: int, rows_per_file: int, seed: int = 16) -> list[Path]:
    """Write ``rows`` rows as Parquet files of ``rows_per_file`` rows (skipped if present)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / "rows.json"
    n_files = -(-rows // rows_per_file)
    files = [folder / f"part-{i:05d}.parquet" for i in range(n_files)]
    if marker.exists() and json.loads(marker.read_text()) == {"rows": rows, "per_file": rows_per_file}:
        return files
    rng = np.random.default_rng(seed)
    effects = [rng.normal(0, sd, k) for sd, k in zip(SDS, LEVELS)]
    for i, path in enumerate(files):
        n = min(rows_per_file, rows - i * rows_per_file)
        codes = [rng.integers(0, k, n).astype(np.int32) for k in LEVELS]
        x = rng.normal(size=(n, 3))
        y = BETA[0] + x @ np.array(BETA[1:]) + sum(u[c] for u, c in zip(effects, codes)) + rng.normal(size=n)
        cols = {f"f{j + 1}": c for j, c in enumerate(codes)}
        cols.update({f"x{j + 1}": x[:, j] for j in range(3)})
        cols["y"] = y
        pq.write_table(pa.table(cols), path)
    marker.write_text(json.dumps({"rows": rows, "per_file": rows_per_file}))
    return files


def sum_y(files: list[Path]) -> tuple[float, float]:
    """One Dask pass that only sums ``y`` over the files: (seconds, sum)."""
    import dask.dataframe as dd

    t0 = time.perf_counter()
    total = float(dd.read_parquet([str(f) for f in files], columns=["y"])["y"].sum().compute())
    return time.perf_counter() - t0, total


def read_all(files: list[Path]) -> float:
    """One Dask pass that reads every column the model uses and sums each: seconds (the
    least any fit that reads the rows can cost)."""
    import dask.dataframe as dd

    t0 = time.perf_counter()
    dd.read_parquet([str(f) for f in files], columns=COLUMNS).sum().compute()
    return time.perf_counter() - t0


def dask_passes(files: list[Path]) -> float:
    """The fit's two data passes alone (survey, cross-products): seconds."""
    from multilevel.api.distributed import partitioned_crossprods

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        partitioned_crossprods(FORMULA, [str(f) for f in files])
    return time.perf_counter() - t0


def dask_fit(files: list[Path]) -> tuple[object, float]:
    import multilevel

    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cluster's own warnings (e.g. large graphs)
        m = multilevel.fit(FORMULA, [str(f) for f in files], progress=sys.stderr.isatty())
    return m, time.perf_counter() - t0


def in_memory(files: list[Path]) -> dict:
    """An in-memory fit of the rows of ``files`` (read with pandas), timed."""
    import pandas as pd

    import multilevel

    t0 = time.perf_counter()
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    t_read = time.perf_counter() - t0
    m = multilevel.fit(FORMULA, df)
    t = time.perf_counter() - t0
    return {"rows": len(df), "read_s": round(t_read, 2), "fit_s": round(t - t_read, 2), "fit": m}


def one_evaluation(m: object) -> float:
    obj = m.objective  # type: ignore[attr-defined]
    theta = np.asarray(m.theta)  # type: ignore[attr-defined]
    t0 = time.perf_counter()
    obj(theta * 1.01)
    return time.perf_counter() - t0


def run(args: argparse.Namespace) -> dict:
    from distributed import Client, LocalCluster

    files = generate(Path(args.dir), args.rows, args.rows_per_file)
    cluster = LocalCluster(
        n_workers=2, threads_per_worker=1, memory_limit="4GiB", processes=True, dashboard_address=":0"
    )
    client = Client(cluster)
    try:
        workers0 = set(client.scheduler_info()["workers"])
        t_sum, _ = sum_y(files)
        t_sum2, _ = sum_y(files)  # warm: the file system cache as the fit sees it
        t_read = min(read_all(files), read_all(files))
        t_passes = dask_passes(files)
        m, t_fit = dask_fit(files)
        workers1 = set(client.scheduler_info()["workers"])
        peaks = client.run(peak_rss)
        check_files = files[: max(1, -(-args.check_rows // args.rows_per_file))]
        # the comparison needs the Dask fit of the same rows as the in-memory one
        m_check = m if len(check_files) == len(files) else dask_fit(check_files)[0]
    finally:
        client.close()
        cluster.close()
    opt = m.optinfo  # type: ignore[attr-defined]
    out = {
        "rows": args.rows,
        "files": len(files),
        "levels": LEVELS,
        "sum_y_pass_s": round(min(t_sum, t_sum2), 2),
        "fit_s": round(t_fit, 2),
        "ratio_fit_to_sum_y": round(t_fit / min(t_sum, t_sum2), 2),
        "read_all_columns_pass_s": round(t_read, 2),
        "ratio_read_all_to_sum_y": round(t_read / min(t_sum, t_sum2), 2),
        "data_passes_s": round(t_passes, 2),
        "ratio_passes_to_sum_y": round(t_passes / min(t_sum, t_sum2), 2),
        "optimizer_s": round(opt.seconds, 2),
        # the start, the convergence check (a finite-difference Hessian) and the solution
        "rest_of_fit_s": round(t_fit - t_passes - opt.seconds, 2),
        "evaluations": opt.n_evals,
        "seconds_per_evaluation": round(one_evaluation(m), 3),
        "criterion": m.reml_criterion,  # type: ignore[attr-defined]
        "theta": [round(float(t), 6) for t in m.theta],  # type: ignore[attr-defined]
        "worker_peak_gib": sorted(gib(v) for v in peaks.values()),
        "client_peak_gib_after_fit": gib(peak_rss()),
        "workers_restarted": workers0 != workers1,
    }
    if args.check_rows:
        ref = in_memory(check_files)
        out["in_memory"] = {k: v for k, v in ref.items() if k != "fit"}
        crit = m_check.reml_criterion  # type: ignore[attr-defined]
        out["in_memory"]["criterion"] = ref["fit"].reml_criterion
        out["in_memory"]["dask_criterion_same_rows"] = crit
        out["criterion_rel_diff"] = abs(ref["fit"].reml_criterion / crit - 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--rows-per-file", type=int, default=1_000_000)
    ap.add_argument("--check-rows", type=int, default=10_000_000, help="0: no in-memory fit")
    ap.add_argument("--dir", default=None, help="where the Parquet files go (default /tmp/tall-<rows>)")
    ap.add_argument("--keep", action="store_true", help="keep the files afterwards")
    ap.add_argument("--out", default=None, help="append the JSON record to this file")
    args = ap.parse_args()
    args.dir = args.dir or f"/tmp/tall-{args.rows}"
    try:
        out = run(args)
    finally:
        if not args.keep:
            shutil.rmtree(args.dir, ignore_errors=True)
    emit(out, args.out)


if __name__ == "__main__":
    main()
