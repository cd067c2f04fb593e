"""Generalized linear mixed models from partitioned data on a Dask cluster.

    data (Dask DataFrame, Parquet path, glob or list of files)
      --survey pass--> Recipe with the family (:mod:`multilevel.api.distributed`)
      --one read: every partition's rows materialized (GlmmRows) and kept on its worker-->
      --X'X pass: the rank check-->
      --PIRLS, the Laplace gradient and quadrature on the client (multilevel.glmm),
        each row computation one pass over the kept partitions, their sums added on the workers

A GLMM needs a pass over the rows per PIRLS iteration (the working weights change
with the linear predictor), so the partitions are read once and their materialized
rows stay in the workers' memory between passes; each pass sends the few values it
needs (the effects, the fixed effects, blocks of a factor) and gets back sums: a
log-likelihood, cross-products, per-level sums. The rows' linear predictor and means
at the current point stay on the workers too. The same passes run in memory
(:class:`~multilevel.glmm.rows.GlmmRows`), so both give the same fit.
"""

from __future__ import annotations

import contextlib
import itertools
import weakref
from dataclasses import replace
from typing import Any

import numpy as np

from ..control import FitControl
from ..errors import ModelError

__all__ = ["ClusterRows", "fit_partitioned_data", "fit_partitioned_glmm"]

#: the passes that leave a new state (eta and mu, or the gradient's rows) with the rows
STATE_PASSES = frozenset({"start", "predict", "predict_weighted", "gradient_rows"})


def _build(plan: tuple[Any, bool], df: Any, i: int) -> Any:
    from ..glmm.rows import GlmmRows
    from ..model.partitioned import partition_design

    recipe, compiled = plan
    d = partition_design(recipe, df)
    if d is None:
        return None
    return GlmmRows(d, recipe.n_levels, recipe.family, compiled=compiled, pairs=False)


class Shard:
    """One worker's partitions (:class:`~multilevel.glmm.rows.GlmmRows`) and the states of
    their passes, held on that worker by a Dask actor: a pass is one call to the actor,
    not a task per partition through the scheduler (a few ms instead of ~70 ms)."""

    def __init__(self, parts: list[Any]) -> None:
        self.parts = [p for p in parts if p is not None]
        self.states: dict[int, list[Any]] = {}

    def size(self) -> int:
        return int(sum(p.n for p in self.parts))

    def run(self, name: str, token_in: int | None, token_out: int | None, args: tuple[Any, ...]) -> Any:
        """The pass on every partition at the state ``token_in``; the new state kept as
        ``token_out``; the partitions' results added."""
        from ..glmm.rows import combine

        states = self.states[token_in] if token_in is not None else [None] * len(self.parts)
        new, total = [], None
        for rows, st in zip(self.parts, states):
            st_new, value = rows.run(name, st, *args)
            new.append(st_new)
            total = combine(total, value)
        if token_out is not None:
            self.states[token_out] = new
        return total

    def drop(self, token: int) -> None:
        self.states.pop(token, None)


def _cluster_only(what: str) -> ModelError:
    return ModelError(
        f"{what} is not available: this model was fitted from partitioned data (Dask or Parquet) and "
        "its rows live on the cluster; the fit keeps only sums over them. Compute per-row values per "
        "partition with fit.predict(partition) (ddf.map_partitions), or fit in memory"
    )


def _release(actors: list[Any], token: int) -> None:
    for a in actors:
        with contextlib.suppress(Exception):  # the cluster may be gone already
            a.drop(token)


class RemoteState:
    """The rows' state (eta and mu) kept on the workers under a token; released there
    when this handle is collected."""

    def __init__(self, token: int, actors: list[Any]) -> None:
        self.token = token
        weakref.finalize(self, _release, actors, token)

    @property
    def eta(self) -> np.ndarray:
        raise _cluster_only("the linear predictor per row")

    @property
    def mu(self) -> np.ndarray:
        raise _cluster_only("the fitted means per row")


class ClusterRows:
    """The row passes of :class:`~multilevel.glmm.rows.GlmmRows` over partitions kept on
    a cluster's workers (one :class:`Shard` actor per worker): each :meth:`run` is one
    pass, the shards' results added on the client."""

    remote = True

    def __init__(self, client: Any, actors: list[Any], n: int, compiled: bool, progress: Any) -> None:
        self.client, self.actors, self.n, self.compiled = client, actors, n, compiled
        self.pairs: dict[bool, None] = {
            False: None,
            True: None,
        }  # no pairwise Schur structure across partitions
        self.progress = progress
        self.passes = 0
        self._tokens = itertools.count()

    def run(self, name: str, state: Any, *args: Any) -> tuple[Any, Any]:
        """The pass ``name`` on every partition at ``state``: ``(state, summed result)``."""
        from ..glmm.rows import combine

        if self.client.status in ("closed", "closing"):
            raise ModelError(
                "the Dask cluster this fit's rows live on is closed, so this needs them again: fit "
                "inside `with distributed.Client(...)` to keep the cluster for profiles, intervals and "
                "refits, or fit in memory"
            )
        token_in = state.token if isinstance(state, RemoteState) else None
        token_out = next(self._tokens) if name in STATE_PASSES else None
        calls = [a.run(name, token_in, token_out, args) for a in self.actors]
        total = None
        for c in calls:
            total = combine(total, c.result())
        self.passes += 1
        self.progress.passes(self.passes)
        return (RemoteState(token_out, self.actors) if token_out is not None else None), total

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise _cluster_only(f"rows.{name}")


def _laplace_allowed(family: Any, laplace: str, nagq: int) -> None:
    from ..family import Dispersion

    if laplace == "expected" and family.dispersion is Dispersion.SCALE and nagq <= 1:
        raise ModelError(
            f"lme4's glmer criterion for the {family.name} family (laplace='expected' with nagq 0 or 1) "
            "puts the deviance of all rows into each row's density, which partitions cannot sum; use "
            "laplace='observed' (the Laplace approximation with the dispersion estimated) or fit in memory"
        )


def _check_response(cluster: ClusterRows, response: str) -> None:
    """The in-memory fit's check of a constant response, over all partitions."""
    from ..errors import DataError

    hi, lo = cluster.run("response_range", None)[1]
    if hi.value == -lo.value:
        raise DataError(
            f"the response {response} is constant ({hi.value:g}); there is nothing to model (for a "
            "binary response: every outcome is the same)"
        )


def _persist(client: Any, recipe: Any, parts: list[Any], compiled: bool, report: Any, rows: Any) -> Any:
    """Every partition's rows built once on a worker and kept there by that worker's
    :class:`Shard` actor. Returns the actors and the rows they hold."""
    from dask import delayed
    from distributed import wait

    report.start_pass("materializing rows", sum(rows))
    futures = client.compute([delayed(_build)((recipe, compiled), p, i) for i, p in enumerate(parts)])
    try:
        wait(futures)
        for f in futures:
            if f.status == "error":
                f.result()  # the worker's error, raised here
        holders: dict[str, list[Any]] = {}
        where = client.who_has(futures)  # one request for every partition
        for f in futures:
            holders.setdefault(where[f.key][0], []).append(f)
        actors = [
            client.submit(Shard, fs, actor=True, workers=[w], allow_other_workers=False).result()
            for w, fs in holders.items()
        ]
        sizes = [a.size().result() for a in actors]
    finally:
        report.rows(sum(rows))
        report.end_pass()
    return actors, int(sum(sizes))


def fit_partitioned_glmm(
    formula: str,
    data: Any,
    family: Any,
    *,
    nagq: int = 1,
    laplace: str = "observed",
    weights: str | None = None,
    offset: str | None = None,
    na_action: str = "omit",
    start: np.ndarray | None = None,
    control: FitControl | None = None,
    progress: bool = False,
    result_type: type[Any],
) -> Any:
    """Laplace / quadrature fit of a GLMM whose rows are partitioned (see the module).

    The cluster is the active ``dask.distributed`` client (then the fit can use it again
    after: profiles, intervals), or a ``LocalCluster`` for the call.
    """
    from ..glmm.driver import fit_glmm_result
    from ..model import partitioned as pt
    from ..present.progress import Progress
    from .distributed import cluster_client, survey_recipe

    _laplace_allowed(family, laplace, nagq)
    control = FitControl() if control is None else control
    report = Progress(progress)
    try:
        with cluster_client() as client:
            recipe, parts, survey, rows = survey_recipe(
                client, formula, data, report, weights=weights, offset=offset, na_action=na_action,
                family=family,
            )  # fmt: skip
            kept, n = _persist(client, recipe, parts, control.use_compiled_kernels, report, rows)
            cluster = ClusterRows(client, kept, n, control.use_compiled_kernels, report)
            _check_response(cluster, recipe.spec.response)
            keep = pt.independent_columns(cluster.run("fixed_crossprod", None)[1])
            spec = recipe.spec
            if len(keep) < len(spec.fixed_names):
                spec = pt.drop_fixed(spec, keep)
                recipe = replace(recipe, spec=spec, keep=tuple(keep))
                kept, n = _persist(client, recipe, parts, control.use_compiled_kernels, report, rows)
                cluster = ClusterRows(client, kept, n, control.use_compiled_kernels, report)
            fit = fit_glmm_result(
                spec,
                pt.RemoteRows(n, survey.rows),
                family,
                nagq=nagq,
                start=start,
                control=control,
                laplace=laplace,
                result_type=result_type,
                rows=cluster,
            )
            fit.deviance_residual_sum  # noqa: B018 - what needs the rows, while the cluster is up
            return fit
    finally:
        report.close()


def fit_partitioned_data(
    formula: str,
    data: Any,
    family: Any,
    link: Any,
    nagq: Any,
    reml: Any,
    weights: Any,
    offset: Any,
    na_action: str,
    start: Any,
    control: FitControl,
    progress: bool,
    laplace: Any,
) -> Any:
    """``fit`` of partitioned data: an LMM's cross-products (:func:`fit_partitioned`) or a
    GLMM's rows kept on the workers (:mod:`multilevel.api.distributed_glmm`)."""
    from ..family import get_family
    from .distributed import fit_partitioned
    from .options import glmm_options, lmm_options

    fam = get_family(family, link)
    shared = dict(
        weights=weights, offset=offset, na_action=na_action, start=start, control=control, progress=progress
    )
    if not fam.is_lmm:
        from ..present.glmm_fit import GlmmFit

        nagq, laplace = glmm_options(fam, reml, control, nagq, laplace)
        return fit_partitioned_glmm(
            formula, data, fam, nagq=nagq, laplace=laplace, result_type=GlmmFit, **shared
        )
    from ..present.lmm_fit import LmmFit

    lmm_options(nagq, laplace)
    return fit_partitioned(formula, data, reml=reml, result_type=LmmFit, **shared)
