"""Many fits of one model: the parametric bootstrap and one design with many responses.

Both reuse the fitted design and the cross-products of ``[Z X]``; only each
response's own cross-products are new (:mod:`multilevel.lmm.refits`, the batched
engine of :mod:`multilevel.lmm.batch`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataWarning, ModelError, MultilevelError, warn
from ..linalg.threads import blas_threads


def bootstrap(
    fit: Any,
    n: int = 1000,
    statistic: Callable[[Any], Any] | None = None,
    *,
    seed: int | None = None,
    use_u: bool = False,
    workers: int | None = None,
) -> Any:
    """Parametric bootstrap of a fitted mixed model, as lme4's ``bootMer(type = "parametric")``.

    Parameters
    ----------
    fit:
        A linear or generalized linear mixed-model fit (:func:`multilevel.fit`).
    n:
        Number of replicates (``nsim``).
    statistic:
        None (default): the fixed effects, the SDs and correlations of every
        grouping factor and the residual SD, as ``bootMer`` with ``FUN = c(fixef(x),
        as.data.frame(VarCorr(x))$sdcor)``; these run on the batched engine. Or a
        function of a fit returning numbers, called on every replicate's refit.
    seed:
        Seed of the simulations (recorded in the result; random if None).
    use_u:
        Simulate at the conditional modes of the random effects (``use.u = TRUE``)
        instead of drawing new group effects.
    workers:
        Threads refitting the replicates (None: every CPU, at most 8). Every replicate's
        fit is its own, so the answers do not depend on it.

    Returns
    -------
    :class:`multilevel.model.bootstrap.BootstrapResult`
        ``.replicates`` (one row per replicate; NaN where the refit failed),
        ``.t0``, ``.confint(level, method="perc" | "basic" | "norm")``,
        ``.summary()``, ``.n_failed``, ``.n_singular``.

    Examples
    --------
    >>> import multilevel
    >>> m = multilevel.fit("Reaction ~ Days + (Days | Subject)", multilevel.load_dataset("sleepstudy"))
    >>> b = multilevel.bootstrap(m, 200, seed=1)
    >>> list(b.replicates.columns)[:3]
    ['Intercept', 'Days', 'sd_(Intercept)|Subject']
    >>> b.n_failed
    0
    """
    from ..model.bootstrap import parametric_bootstrap

    if not hasattr(fit, "_refit_responses"):
        raise ModelError(
            f"bootstrap takes a mixed-model fit (a result of multilevel.fit); got {type(fit).__name__}"
        )
    if statistic is not None and not callable(statistic):
        raise ModelError(f"statistic must be a function of a fit (or None), got {type(statistic).__name__}")
    with blas_threads(1):
        return parametric_bootstrap(
            fit, n, statistic=statistic, seed=seed, use_u=bool(use_u), workers=workers
        )


def _response_matrix(responses: Any, n_rows: int) -> tuple[np.ndarray, list[str]]:
    """The responses as (rows, K) floats and their names."""
    if isinstance(responses, pd.DataFrame):
        names = [str(c) for c in responses.columns]
        try:
            Y = responses.to_numpy(dtype=float)
        except (TypeError, ValueError):
            bad = [c for c in responses.columns if not pd.api.types.is_numeric_dtype(responses[c])]
            raise ModelError(f"responses must be numeric columns; not numeric: {bad[:5]}") from None
    else:
        try:
            Y = np.asarray(responses, dtype=float)
        except (TypeError, ValueError):
            raise ModelError(
                "responses must be a DataFrame of numeric columns or a 2-D array of numbers"
            ) from None
        if Y.ndim == 1:
            Y = Y[:, None]
        if Y.ndim != 2:
            raise ModelError(f"responses must be 2-D (rows x responses), got shape {Y.shape}")
        names = [f"y{i + 1}" for i in range(Y.shape[1])]
    if Y.shape[0] != n_rows:
        hint = " (transpose it: one column per response)" if Y.shape[1] == n_rows else ""
        raise ModelError(
            f"responses have {Y.shape[0]} rows and the data {n_rows}: one row per data row{hint}"
        )
    if Y.shape[1] == 0:
        raise ModelError("responses has no columns: give at least one response")
    if len(set(names)) != len(names):
        raise ModelError("responses have repeated column names; give each response its own name")
    return Y, names


def fit_many(
    formula: str,
    data: Any,
    responses: Any,
    *,
    reml: bool = True,
    weights: Any = None,
    offset: Any = None,
    na_action: str = "omit",
) -> pd.DataFrame:
    """Fit one linear mixed model to many responses on the same design.

    The formula's left-hand side names the response; each column of
    ``responses`` takes its place in turn (the data need not have that column).
    The design, grouping structure and cross-products are built once; the fits
    run batched. A response with missing values in some rows is fitted on its own
    complete rows (by :func:`multilevel.fit`), so every answer equals a fit of that
    response alone.

    Parameters
    ----------
    formula:
        ``"y ~ x + (1 | g)"``, a linear mixed model.
    data:
        The predictors and grouping factors.
    responses:
        A DataFrame with one numeric column per response, or a 2-D array (rows x
        responses), one row per row of ``data``.
    reml:
        REML (default) or maximum likelihood.

    Returns
    -------
    pandas.DataFrame
        Tidy, one row per response and parameter: ``response``, ``effect``
        (``"fixed"`` or ``"ran_pars"``), ``group``, ``term``, ``estimate``,
        ``std_error``, ``df`` (Satterthwaite), ``statistic`` (t), ``p_value``, and per
        response ``criterion`` (REML criterion or deviance), ``converged``, ``singular``.

    Examples
    --------
    >>> import numpy as np, multilevel
    >>> d = multilevel.load_dataset("sleepstudy")
    >>> Y = np.column_stack([d["Reaction"], np.log(d["Reaction"])])
    >>> t = multilevel.fit_many("Reaction ~ Days + (1 | Subject)", d, Y)
    >>> t[t.term == "Days"][["response", "estimate"]].round(4).to_numpy().tolist()
    [['y1', 10.4673], ['y2', 0.0337]]"""
    from ..formula import parse_formula
    from ..model.data import to_pandas
    from .core import Model

    if not isinstance(reml, bool):
        raise ModelError(f"reml must be True or False, got {reml!r}")
    df = to_pandas(data)
    Y, names = _response_matrix(responses, len(df))
    response = parse_formula(formula).response
    if response is None:
        raise ModelError(
            f"fit_many needs a response name before '~' (each response takes its place): 'y {formula}'"
        )
    # the design needs a response column: any non-constant one builds the same design
    frame = df.copy(deep=False)
    frame[response] = np.arange(len(df), dtype=float)
    model = Model(formula, frame, weights=weights, offset=offset, na_action=na_action)
    return _fit_responses(model, formula, df, Y, names, response, reml, weights=weights, offset=offset)


def _fit_responses(
    model: Any,
    formula: str,
    df: pd.DataFrame,
    Y: np.ndarray,
    names: list[str],
    response: str,
    reml: bool,
    **options: Any,
) -> pd.DataFrame:
    """The batch of complete responses, each incomplete one on its own, and a row set
    flagged not converged for each that cannot be fitted (constant, or failing)."""
    from ..lmm.many import failed_rows, tidy_fit, tidy_many
    from .core import fit

    rows = model.design.rows if model.design.rows is not None else np.arange(len(df))
    Yd = Y[rows]
    complete = np.all(np.isfinite(Yd), axis=0)
    scale = np.max(np.abs(np.where(np.isfinite(Yd), Yd, 0.0)), axis=0)
    spread = np.ptp(np.where(np.isfinite(Yd), Yd, 0.0), axis=0) if complete.any() else np.zeros(Y.shape[1])
    constant = complete & (spread <= 1e-12 * np.maximum(scale, 1e-300))
    complete &= ~constant
    parts = [failed_rows(model.spec, names[i]) for i in np.flatnonzero(constant)]
    failed: list[str] = [f"{names[i]} (constant: nothing to model)" for i in np.flatnonzero(constant)]
    if complete.any():
        idx = np.flatnonzero(complete)
        with blas_threads(1):
            table = tidy_many(
                model.spec, model.design, model.crossprods, reml, Yd[:, idx], [names[i] for i in idx]
            )
        parts.append(table)
    for i in np.flatnonzero(~complete & ~constant):
        alone = df.copy(deep=False)
        alone[response] = Y[:, i]
        try:
            single = fit(formula, alone, reml=reml, **options)
        except (MultilevelError, np.linalg.LinAlgError, FloatingPointError) as exc:
            # one response that cannot be fitted does not stop the others: its rows say so
            failed.append(f"{names[i]} ({exc})")
            parts.append(failed_rows(model.spec, names[i]))
            continue
        parts.append(tidy_fit(single, names[i]))
    if failed:
        warn(
            f"{len(failed)} of {len(names)} responses could not be fitted (rows with converged=False): "
            + "; ".join(failed[:3])
            + (" ..." if len(failed) > 3 else ""),
            DataWarning,
        )
    return _in_order(parts, names)


def _in_order(parts: list[pd.DataFrame], names: list[str]) -> pd.DataFrame:
    """The tables of the batched and the separately fitted responses, in the responses' order."""
    if len(parts) == 1:
        return parts[0]
    order = {name: k for k, name in enumerate(names)}
    out = pd.concat(parts, ignore_index=True)
    key = out["response"].map(order).to_numpy()
    return out.iloc[np.argsort(key, kind="stable")].reset_index(drop=True)
