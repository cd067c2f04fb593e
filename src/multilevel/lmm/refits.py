"""Refits of a linear mixed model on new responses: one (lme4's ``refit``) or thousands.

A new response changes only its own cross-products with ``[Z X]``; the design,
the grouping structure and the cross-products of ``[Z X]`` are kept. One refit
patches the response's row of the fitted cross-products and optimizes from the
current optimum. Many refits (the parametric bootstrap, one model per gene) go
through :class:`~multilevel.lmm.batch.BatchCriterion` and the batched Newton
minimizer of :mod:`multilevel.optim.newton` where the system is small enough;
a response the batch does not bring to convergence, and every response of a large
system, is refitted on its own by the fit's optimizer, so each answer is a
proper fit.
"""

from __future__ import annotations

import dataclasses
import warnings
from typing import Any

import numpy as np

from ..errors import ModelError
from ..linalg.crossprod import CrossProducts, compute_crossprods
from ..model.replicates import ReplicateFits, check_response, singular_rows
from ..optim import newton
from .batch import BatchCriterion, batchable, response_products
from .objective import LmmObjective
from .solution import solve


def _with_response(fit: Any, y: np.ndarray) -> tuple[Any, CrossProducts]:
    """The fit's design with response ``y``, and its cross-products (the fitted ones
    with the response's row replaced when they are dense)."""
    design = dataclasses.replace(fit.design, y=y)
    cp = fit.objective.cp
    n_levels = [g.n_levels for g in fit.spec.groupings]
    if not isinstance(cp.A1R, np.ndarray):
        return design, compute_crossprods(design, n_levels)
    r = response_products(design, n_levels, y)
    lay = cp.layout
    A1R = cp.A1R.copy()
    A1R[:, -1] = r.a1[0].ravel()
    ARR = cp.ARR.copy()
    ARR[:-1, -1] = ARR[-1, :-1] = r.rest[0]
    ARR[-1, -1] = r.yy[0]
    return design, dataclasses.replace(cp, A1R=A1R, ARR=ARR, layout=lay)


def refit(fit: Any, y: Any, *, start: Any = None) -> Any:
    """The same model on response ``y``, from the current optimum (lme4's ``refit``)."""
    from .fit import fit_objective

    y = check_response(fit, y)
    design, cp = _with_response(fit, y)
    obj = LmmObjective(fit.spec, cp, reml=fit.reml)
    x0 = fit.theta if start is None else start
    return fit_objective(obj, design, start=x0, result_type=type(fit))


def fit_responses(
    fit_or_parts: Any, Y: np.ndarray, *, start: np.ndarray | None = None, batch: bool = True
) -> ReplicateFits:
    """Fit the model of ``fit_or_parts`` (a fit, or a ``(spec, design, cp, reml)`` tuple)
    to every column of ``Y`` (n, R), each from ``start`` (k,) or (R, k)."""
    spec, design, cp, reml = _parts(fit_or_parts)
    Y = np.asarray(Y, dtype=float)
    R, k, p = Y.shape[1], spec.theta_map.size, spec.p
    lower = spec.theta_map.lower_bounds
    x0 = np.broadcast_to(np.asarray(start if start is not None else _start(spec, cp), dtype=float), (R, k))
    out = {
        "theta": np.full((R, k), np.nan),
        "beta": np.full((R, p), np.nan),
        "sigma": np.full(R, np.nan),
        "criterion": np.full(R, np.nan),
        "converged": np.zeros(R, dtype=bool),
    }
    n_levels = [g.n_levels for g in spec.groupings]
    done = np.zeros(R, dtype=bool)
    if batch and batchable(cp) and k > 0:
        bc = BatchCriterion(spec, cp, reml, response_products(design, n_levels, Y))
        res = newton.minimize(bc, x0, lower)
        est = bc.estimates(res.x, np.arange(R))
        ok = res.converged & np.isfinite(est["criterion"])
        out["theta"][ok], out["beta"][ok] = res.x[ok], est["beta"][ok]
        out["sigma"][ok], out["criterion"][ok] = est["sigma"][ok], est["criterion"][ok]
        out["converged"][ok] = True
        done = ok
    for r in np.flatnonzero(~done):
        _fit_one(spec, design, reml, Y[:, r], x0[r], n_levels, out, int(r))
    return ReplicateFits(
        theta=out["theta"],
        beta=out["beta"],
        sigma=out["sigma"],
        criterion=out["criterion"],
        converged=out["converged"],
        singular=singular_rows(spec, out["theta"]),
        batched=int(done.sum()),
    )


def _parts(fit_or_parts: Any) -> tuple[Any, Any, CrossProducts, bool]:
    if isinstance(fit_or_parts, tuple):
        return fit_or_parts
    fit = fit_or_parts
    return fit.spec, fit.design, fit.objective.cp, fit.reml


def _start(spec: Any, cp: CrossProducts) -> np.ndarray:
    from .start import moment_start

    return moment_start(spec, cp)


def _fit_one(
    spec: Any, design: Any, reml: bool, y: np.ndarray, x0: np.ndarray, n_levels: list[int], out: dict, r: int
) -> None:
    """One response by the single-fit path; a failure leaves NaN and converged False."""
    from .fit import optimize

    d = dataclasses.replace(design, y=y)
    try:
        obj = LmmObjective(spec, compute_crossprods(d, n_levels), reml=reml)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theta, opt, _ = optimize(obj, start=x0)
        f = obj.factor(theta)
        beta = solve(obj, f).beta
    except (np.linalg.LinAlgError, ValueError, FloatingPointError, ModelError):
        return
    if not (np.isfinite(opt.fval) and np.all(np.isfinite(beta))):
        return
    out["theta"][r], out["beta"][r] = theta, beta
    out["sigma"][r], out["criterion"][r] = obj.sigma(f), opt.fval
    out["converged"][r] = bool(opt.converged)
