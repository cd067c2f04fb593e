"""``multilevel.gee``: data in, clusters formed and checked, estimates and SEs out."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from ..family import Family, get_family
from ..formula import parse_formula
from ..model.data import check_columns, check_finite, complete_rows, to_pandas
from ..model.design import factor_codes
from .correlation import make_correlation
from .estimate import Clusters, gee_fit
from .results import GeeFit, choose_se
from .variance import covariances


def _design(
    formula: str, df: pd.DataFrame, family: Family
) -> tuple[np.ndarray, np.ndarray, list[str], Any, np.ndarray | None, np.ndarray | None]:
    from formulaic import model_matrix

    parsed = parse_formula(formula)
    if parsed.random:
        raise FormulaError(
            "GEE formulas have no random-effects terms; give the clusters with groups=",
            formula,
            parsed.random[0].span,
        )
    lhs = parsed.response if parsed.response is not None else parsed.cbind[0]  # type: ignore[index]
    try:
        mm = model_matrix(f"{lhs} ~ {parsed.fixed}", df, na_action="ignore")
    except Exception as exc:
        raise FormulaError(f"cannot build the design: {exc}", formula) from exc
    X = np.asarray(mm.rhs.to_numpy(dtype=float))
    trials = None
    if family.trials_response:
        from ..model.response import binomial_response

        def evaluate(expr: str) -> np.ndarray:
            return model_matrix(f"I({expr}) ~ 1", df, na_action="ignore").lhs.to_numpy(dtype=float).ravel()

        y, trials = binomial_response(parsed.response, parsed.cbind, df, evaluate)
    else:
        y = np.asarray(mm.lhs.to_numpy(dtype=float)).ravel()
    off = None
    for expr in parsed.offsets:
        o = model_matrix(f"I({expr}) ~ 1", df, na_action="ignore").lhs.to_numpy(dtype=float).ravel()
        off = o if off is None else off + o
    return y, X, [str(c) for c in mm.rhs.columns], mm.rhs.model_spec, trials, off


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
) -> GeeFit:
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
        (see :func:`multilevel.gee.results.choose_se`).

    Examples
    --------
    >>> import multilevel
    >>> m = multilevel.gee("y ~ arm + x", multilevel.load_dataset("crt10"), groups="cluster",
    ...                    family="binomial")
    >>> m.se_method
    'kc'
    """
    df = to_pandas(data)
    fam = get_family(family, link)
    check_columns(df, [groups], "groups=")
    if df[groups].isna().any():
        raise DataError(
            f"the cluster column {groups!r} has {int(df[groups].isna().sum())} missing values; every "
            "row needs a cluster: fill them in or drop those rows first"
        )
    if time is not None:
        check_columns(df, [time], "time=")
    from ..model.design import _names_in

    cols = {str(c) for c in df.columns}
    used = _names_in(formula, cols) + [groups] + ([time] if time else [])
    used += [a for a in (weights, offset) if isinstance(a, str)]
    mask, _ = complete_rows(df, used, na_action)
    sub = df.loc[mask].reset_index(drop=True)
    codes, levels = factor_codes(sub, (groups,))
    order = np.argsort(codes, kind="stable")
    sub = sub.iloc[order].reset_index(drop=True)
    codes = codes[order]
    y, X, names, fixed_spec, trials, off = _design(formula, sub, fam)
    check_finite("the response", y)
    check_finite("the design", X)
    n = len(sub)
    w = np.ones(n)
    if weights is not None:
        w = np.asarray(
            sub[weights] if isinstance(weights, str) else np.asarray(weights)[mask][order], dtype=float
        )
    if trials is not None:
        w = w * trials
    offv = np.zeros(n) if off is None else off
    if offset is not None:
        offv = offv + np.asarray(
            sub[offset] if isinstance(offset, str) else np.asarray(offset)[mask][order], dtype=float
        )
    fam.check(y, w)
    K = len(levels)
    if K < 2:
        raise DataError(f"GEE needs at least 2 clusters; {groups!r} has {K}")
    starts = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=K))])
    times = _time_positions(sub, time, starts, corstr, groups)
    n_times = int(max(t.max() for t in times)) + 1
    corr = make_correlation(corstr, n_times)
    clusters = Clusters(starts=starts, times=times)
    p = X.shape[1]
    est = gee_fit(y, X, w, offv, clusters, fam, corr)
    covs = covariances(X, y, w, clusters, fam, corr, est)
    method, reason = choose_se(se, clusters.sizes, p)
    return GeeFit(
        formula=formula,
        family=fam,
        corr=corr,
        names=tuple(names),
        fixed_spec=fixed_spec,
        estimate=est,
        covs=covs,
        se_method=method,
        se_reason=reason,
        cluster_sizes=clusters.sizes,
        groups=groups,
        y=y,
        w=w,
        n_missing=int((~mask).sum()),
        qic=_qic(
            y,
            w,
            est,
            fam,
            X,
            covs,
            gee_fit(y, X, w, offv, clusters, fam, make_correlation("independence", 1)),
        ),
    )


def _time_positions(
    sub: pd.DataFrame, time: str | None, starts: np.ndarray, corstr: str, groups: str
) -> list[np.ndarray]:
    out = []
    for a, b in itertools.pairwise(starts):
        if time is None:
            out.append(np.arange(b - a))
            continue
        t = sub[time].to_numpy()[a:b]
        if np.any(np.diff(t) < 0):
            raise DataError(
                f"time {time!r} is not sorted within cluster {sub[groups].iloc[a]!r}; sort the rows by "
                "cluster and time first"
            )
        if np.any(np.diff(t) == 0) and corstr in ("ar1", "unstructured"):
            raise DataError(
                f"cluster {sub[groups].iloc[a]!r} has repeated times in {time!r}; {corstr} needs one "
                "observation per time"
            )
        tt = np.asarray(t, dtype=float)
        if np.any(tt != np.round(tt)):
            raise DataError(f"time {time!r} must hold integer time points for {corstr}")
        out.append(tt.astype(np.int64))
    if time is not None:
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
