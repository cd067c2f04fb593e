"""``multilevel.gee``: data in through the shared materializer, clusters formed and
checked, estimates and SEs out."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from ..control import SMALL_MODEL_ROWS, SMALL_MODEL_SECONDS
from ..errors import DataError, ModelError
from ..family import get_family
from ..model.data import check_columns, to_pandas
from ..model.design import Design, build_model
from ..model.verdict import is_numerical_failure, numerical_failure
from ..optim.optimize import time_limit
from .correlation import make_correlation
from .estimate import Clusters, gee_fit
from .results import GeeResult, choose_se
from .variance import covariances


def gee(
    formula: str,
    data: Any,
    groups: str,
    *,
    family: Any = "gaussian",
    link: Any = None,
    corstr: str = "exchangeable",
    time: str | None = None,
    se: str = "auto",
    weights: Any = None,
    offset: Any = None,
    na_action: str = "omit",
    result_type: type[GeeResult] = GeeResult,
) -> GeeResult:
    """Generalized estimating equations for clustered data, with small-sample SEs.

    Parameters
    ----------
    formula:
        ``"y ~ x1 + x2"`` (binomial responses in any form ``fit`` accepts).
    groups:
        Column identifying the clusters.
    corstr:
        Working correlation: ``independence``, ``exchangeable``, ``ar1`` (in the
        order of ``time`` within cluster, else row order) or ``unstructured``.
    se:
        ``model``, ``robust``, ``md``, ``kc``, ``fg``, ``jackknife`` or ``auto``
        (see :func:`multilevel.marginal.results.choose_se`).

    Examples
    --------
    >>> import multilevel
    >>> m = multilevel.gee("y ~ arm + x", multilevel.load_dataset("crt10"), groups="cluster",
    ...                    family="binomial")
    >>> m.se_method
    'kc'
    """
    fam = get_family(family, link)
    df = to_pandas(data)
    if time is not None:
        check_columns(df, [time], "time=")
    spec, design = build_model(
        formula,
        df,
        family=fam.name,
        weights=weights,
        offset=offset,
        na_action=na_action,
        cluster=groups,
        also_complete=(time,) if time is not None else (),
    )
    y, X, w, offv, codes, t_sorted = _by_cluster(design, None if time is None else df[time].to_numpy())
    clusters = _clusters(codes, t_sorted, spec.cluster, time, corstr)
    corr = make_correlation(corstr, int(max(t.max() for t in clusters.times)) + 1)
    est, covs, indep = _estimate(formula, y, X, w, offv, clusters, fam, corr)
    method, reason = choose_se(se, clusters.sizes, X.shape[1])
    return result_type(
        formula=formula,
        family=fam,
        corr=corr,
        names=spec.fixed_names,
        spec=spec,
        design=design,
        estimate=est,
        covs=covs,
        se_method=method,
        se_reason=reason,
        cluster_sizes=clusters.sizes,
        groups=groups,
        y=y,
        w=w,
        n_missing=spec.n_missing,
        qic=_qic(y, w, est, fam, X, covs, indep),
    )


def _estimate(
    formula: str,
    y: np.ndarray,
    X: np.ndarray,
    w: np.ndarray,
    offv: np.ndarray,
    clusters: Clusters,
    fam: Any,
    corr: Any,
) -> tuple[Any, dict[str, np.ndarray], Any]:
    """The GEE estimate, its covariances and the independence fit (for QIC); a model
    error when the equations have no finite solution."""
    if X.shape[1] == 0:
        raise ModelError(
            f"{formula!r} has no fixed effects; GEE estimates a mean model: add an intercept or a predictor"
        )
    limit = SMALL_MODEL_SECONDS if y.size < SMALL_MODEL_ROWS else None
    try:
        with time_limit(limit):
            est = gee_fit(y, X, w, offv, clusters, fam, corr)
            indep = gee_fit(y, X, w, offv, clusters, fam, make_correlation("independence", 1))
        covs = covariances(X, y, w, clusters, fam, corr, est)
    except Exception as exc:
        if not is_numerical_failure(exc):
            raise
        raise numerical_failure(f"GEE for {formula!r}", exc, _GEE_ADVICE) from exc
    if not (np.all(np.isfinite(est.beta)) and np.all(np.isfinite(np.diag(covs["robust"])))):
        raise ModelError(f"GEE for {formula!r} gave non-finite estimates or standard errors; {_GEE_ADVICE}")
    return est, covs, indep


_GEE_ADVICE = (
    "the estimating equations have no finite solution: look for predictors that are constant or "
    "collinear within the data used, fitted means outside the family's range (try the canonical "
    "link), or an outcome that is all 0 (or all 1) in the data used"
)


def _by_cluster(
    design: Design, time_values: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """y, X, weights, offset, cluster codes and times with each cluster's rows together
    (a stable sort: the data's order within a cluster is kept)."""
    assert design.clusters is not None
    order = np.argsort(design.clusters, kind="stable")
    n = design.n
    w = np.ones(n) if design.weights is None else design.weights[order]
    off = np.zeros(n) if design.offset is None else design.offset[order]
    if time_values is not None and design.rows is not None:
        time_values = time_values[design.rows]
    t = None if time_values is None else time_values[order]
    return design.y[order], design.X[order], w, off, design.clusters[order], t


def _clusters(
    codes: np.ndarray, t_sorted: np.ndarray | None, cluster: Any, time: str | None, corstr: str
) -> Clusters:
    """Where each cluster's rows start and their time positions."""
    K = cluster.n_levels
    starts = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=K))])
    return Clusters(starts=starts, times=_time_positions(t_sorted, time, starts, corstr, cluster.levels))


def _time_positions(
    t_all: np.ndarray | None, time: str | None, starts: np.ndarray, corstr: str, levels: tuple[str, ...]
) -> list[np.ndarray]:
    """Each cluster's time positions (row order without ``time``), checked for ``corstr``."""
    out = []
    for k, (a, b) in enumerate(itertools.pairwise(starts)):
        if t_all is None:
            out.append(np.arange(b - a))
            continue
        t = t_all[a:b]
        if np.any(np.diff(t) < 0):
            raise DataError(
                f"time {time!r} is not sorted within cluster {levels[k]!r}; sort the rows by "
                "cluster and time first"
            )
        if np.any(np.diff(t) == 0) and corstr in ("ar1", "unstructured"):
            raise DataError(
                f"cluster {levels[k]!r} has repeated times in {time!r}; {corstr} needs one "
                "observation per time"
            )
        tt = np.asarray(t, dtype=float)
        if np.any(tt != np.round(tt)):
            raise DataError(f"time {time!r} must hold integer time points for {corstr}")
        out.append(tt.astype(np.int64))
    if t_all is not None:
        lo = min(int(t.min()) for t in out)
        out = [t - lo for t in out]
    return out


def _qic(
    y: np.ndarray, w: np.ndarray, est: Any, fam: Any, X: np.ndarray, covs: dict[str, np.ndarray], indep: Any
) -> float:
    """Pan's QIC as geepack's ``QIC()``: -2 x quasi-likelihood (scale 1) at the fit, plus
    2 tr(Omega_I V_robust) with Omega_I the model-based information of the independence fit."""
    mu_eta = fam.link.mu_eta(indep.eta)
    A = w * mu_eta**2 / fam.variance(indep.mu, 1.0)
    Omega_I = (X.T * A) @ X / indep.phi
    quasi = -0.5 * float(np.sum(fam.unit_deviance(y, est.mu, w, 1.0)))
    return -2.0 * quasi + 2.0 * float(np.trace(Omega_I @ covs["robust"]))
