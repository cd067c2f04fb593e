"""Linear mixed models from partitioned data on a Dask cluster: two passes, then the client.

    data (Dask DataFrame, Parquet path, glob or list of files)
      --survey pass on the workers--> Survey --> Recipe (:mod:`multilevel.model.partitioned`)
      --cross-product pass on the workers, reduced there as the partitions finish--> CrossProducts
      --rank check on X'X, then lmm.objective + lmm.fit on the client--> LmmFit

Only the recipe (the frozen spec and the columns to read) goes to the workers and only
surveys and cross-products come back, so nothing assumes that the workers share a disk
or memory with the client. The cluster is the active ``dask.distributed`` client, or a
``LocalCluster`` started for the call and closed after it. Dask is imported here only.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..control import FitControl
from ..errors import DataError, ModelError

__all__ = [
    "fit_partitioned",
    "is_partitioned",
    "partitioned_crossprods",
    "survey_recipe",
]


def is_partitioned(data: Any) -> bool:
    """Whether ``data`` is a Dask DataFrame or names Parquet files (a path, glob or list)."""
    if isinstance(data, (str, os.PathLike)):
        return True
    if isinstance(data, (list, tuple)) and data and all(isinstance(d, (str, os.PathLike)) for d in data):
        return True
    return type(data).__module__.split(".")[0] in ("dask", "dask_expr")


def _dask_frame(data: Any) -> Any:
    try:
        import dask.dataframe as dd
    except ImportError:
        raise ModelError(
            "fitting from a Dask DataFrame or Parquet files needs dask: pip install "
            "'dask[dataframe,distributed]' pyarrow (or multilevel[scale])"
        ) from None
    if isinstance(data, dd.DataFrame):
        return data
    paths = [os.fspath(d) for d in data] if isinstance(data, (list, tuple)) else os.fspath(data)
    hint = "give a Dask DataFrame, a Parquet file or directory, a glob ('data/*.parquet') or a list of files"
    try:
        ddf = dd.read_parquet(paths)
    except (OSError, ValueError, TypeError) as exc:
        raise DataError(f"cannot read Parquet files from {paths!r} ({exc}); {hint}") from exc
    if len(ddf.columns) == 0:  # a glob that matches nothing reads as a table of no columns
        raise DataError(f"no Parquet data found at {paths!r}: {hint}")
    return ddf


@contextlib.contextmanager
def cluster_client() -> Iterator[Any]:
    """The active ``dask.distributed`` client, or one on a ``LocalCluster`` for this call."""
    from distributed import Client, LocalCluster, get_client

    try:
        active = get_client()
    except ValueError:
        active = None
    if active is not None:
        yield active
        return
    with LocalCluster(dashboard_address=":0") as cluster, Client(cluster) as client:
        yield client


def _worker_of(client: Any, future: Any) -> str | None:
    """The worker that holds a finished future's result (None if the scheduler does not say)."""
    where = client.who_has([future]).get(future.key) or ()
    return next(iter(where), None)


def _reduce(client: Any, futures: list[Any], combine: Callable[[Any, Any], Any], on_done: Any) -> Any:
    """Combine the partitions' results on the workers as they finish: each with another
    result on the same worker (no transfer; ahead of the worker's next partitions, so
    that it holds few results at a time), then the workers' sums across workers;
    ``on_done(i)`` for partition ``i``."""
    from distributed import as_completed

    index = {f.key: i for i, f in enumerate(futures)}
    pending = as_completed(futures)
    futures.clear()  # the results are freed once combined
    waiting: dict[str | None, Any] = {}  # one uncombined result per worker
    while True:
        for f in pending:
            if f.status == "error":
                f.result()  # raises the worker's error here
            if f.key in index:
                on_done(index[f.key])
            worker = _worker_of(client, f)
            other = waiting.pop(worker, None)
            if other is None:
                waiting[worker] = f
                continue
            on = {} if worker is None else {"workers": [worker], "allow_other_workers": True}
            pending.add(client.submit(combine, other, f, pure=False, priority=1, **on))
        if len(waiting) <= 1:
            break
        sums = list(waiting.values())  # every partition is done: the workers' sums, pairwise
        waiting.clear()
        for a, b in zip(sums[::2], sums[1::2]):
            pending.add(client.submit(combine, a, b, pure=False, priority=1))
        if len(sums) % 2:
            waiting[None] = sums[-1]
    return next(iter(waiting.values())).result() if waiting else None


def _pass(
    client: Any,
    parts: list[Any],
    fn: Callable,
    arg: Any,
    combine: Callable,
    progress: Any,
    desc: str,
    rows: tuple[int, ...] | None,
) -> Any:
    """One pass: ``fn(arg, partition, i)`` on every partition ``i``, combined on the workers."""
    from dask import delayed

    shared = client.scatter(arg, broadcast=True, hash=False)
    futures = client.compute([delayed(fn)(shared, p, i) for i, p in enumerate(parts)])
    if rows:
        progress.start_pass(desc, sum(rows))
    else:
        progress.start_pass(desc, len(parts), "partitions")
    try:
        return _reduce(client, futures, combine, lambda i: progress.rows(rows[i] if rows else 1))
    finally:
        progress.end_pass()


def _survey(plan: tuple[list[str], list[tuple[str, ...]]], df: Any, i: int) -> Any:
    from ..model.partitioned import survey_partition

    return survey_partition(df, plan[0], plan[1], index=i)


def _crossprods(recipe: Any, df: Any, i: int) -> Any:
    from ..model.partitioned import partition_crossprods

    return partition_crossprods(recipe, df)


def survey_recipe(
    client: Any,
    formula: str,
    data: Any,
    report: Any,
    *,
    weights: str | None = None,
    offset: str | None = None,
    na_action: str = "omit",
    family: Any = None,
) -> tuple[Any, list[Any], Any, tuple[int, ...]]:
    """The first pass (the survey) and the recipe it gives: the recipe, the partitions
    (delayed frames of the columns used), the survey and the rows of every partition."""
    from ..model import partitioned as pt

    ddf = _dask_frame(data)
    parsed, used, sets = pt.survey_plan(formula, ddf._meta, weights, offset)
    parts = ddf[used].to_delayed()
    name = os.fspath(data) if isinstance(data, (str, os.PathLike)) else "data"
    survey = _pass(client, parts, _survey, (used, sets), pt.merge_surveys, report, "survey", None)
    recipe = pt.recipe_from_survey(
        parsed, survey, sets, used, weights=weights, offset=offset, na_action=na_action, data_name=name,
        family=family,
    )  # fmt: skip
    rows = tuple(survey.partition_rows[i] for i in range(len(parts)))
    return recipe, parts, survey, rows


def partitioned_crossprods(
    formula: str,
    data: Any,
    *,
    weights: str | None = None,
    offset: str | None = None,
    na_action: str = "omit",
    progress: Any = None,
) -> tuple[Any, Any, int]:
    """The two data passes alone: the spec (rank-deficient columns dropped), the summed
    cross-products and the number of input rows, for the objective or a benchmark.

    Examples
    --------
    >>> import dask.dataframe as dd  # doctest: +SKIP
    >>> ddf = dd.read_parquet("d/*.parquet")  # doctest: +SKIP
    >>> spec, cp, n = partitioned_crossprods("y ~ x + (1 | g)", ddf)  # doctest: +SKIP
    """
    from ..model import partitioned as pt
    from ..present.progress import Progress

    report = progress if isinstance(progress, Progress) else Progress(bool(progress))
    with cluster_client() as client:
        recipe, parts, survey, rows = survey_recipe(
            client, formula, data, report, weights=weights, offset=offset, na_action=na_action
        )
        cp = _pass(client, parts, _crossprods, recipe, pt.add_crossprods, report, "cross-products", rows)
    spec, cp = pt.drop_dependent_columns(recipe.spec, cp)
    return spec, cp, survey.rows


def fit_partitioned(
    formula: str,
    data: Any,
    *,
    reml: bool | None = None,
    weights: Any = None,
    offset: Any = None,
    na_action: str = "omit",
    start: np.ndarray | None = None,
    control: FitControl | None = None,
    progress: Any = None,
    result_type: type[Any],
) -> Any:
    """REML / ML fit of a linear mixed model whose rows are partitioned (see the module)."""
    from ..linalg.threads import blas_threads
    from ..lmm.fit import fit_objective
    from ..lmm.objective import LmmObjective
    from ..model.partitioned import RemoteRows
    from ..present.progress import Progress

    if reml is not None and not isinstance(reml, bool):
        raise ModelError(f"reml must be True or False, got {reml!r}")
    report = Progress(bool(progress))
    try:
        spec, cp, n_input = partitioned_crossprods(
            formula, data, weights=weights, offset=offset, na_action=na_action, progress=report
        )
        ctl = FitControl() if control is None else control
        obj = LmmObjective(
            spec, cp, reml=True if reml is None else reml, backend=ctl.linalg_backend, device=ctl.device
        )
        with blas_threads(obj.layout.m):
            return fit_objective(
                obj,
                RemoteRows(spec.nobs, n_input),
                start=start,
                control=control,
                result_type=result_type,
                progress=report.evaluation,
            )
    finally:
        report.close()


@contextlib.contextmanager
def connected(address: str) -> Iterator[Any]:
    """A ``dask.distributed`` client of the scheduler at ``address`` for the block (the
    partitioned fits inside use it as the active client)."""
    try:
        from distributed import Client
    except ImportError:
        raise ModelError(
            "a Dask scheduler needs dask.distributed: pip install 'dask[dataframe,distributed]' "
            "pyarrow (or multilevel[scale])"
        ) from None
    try:
        client = Client(address, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise ModelError(f"cannot reach the Dask scheduler at {address!r} ({exc})") from exc
    try:
        yield client
    finally:
        client.close()
