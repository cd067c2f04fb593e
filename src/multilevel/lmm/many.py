"""One design, many responses: every response's fit and its tests, batched.

The fits come from :func:`~multilevel.lmm.refits.fit_responses`; the
Satterthwaite degrees of freedom (lmerTest's: ``vcov(beta)`` and the deviance as
functions of ``varpar = (theta, sigma)``, :mod:`multilevel.lmm.satterthwaite`)
from central differences of the batched factor of
:class:`~multilevel.lmm.batch.BatchCriterion`, every response's stencil
evaluated together. The table is tidy (broom.mixed's ``tidy``): one row per
response and parameter.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..linalg.criteria import LOG_2PI
from ..model.bootstrap import sdcor_names, sdcor_values
from ..model.pvalues import two_sided_t
from ..model.replicates import ReplicateFits
from ..optim.newton import cross_terms, stencil
from .batch import BatchCriterion, batchable, response_products
from .refits import fit_responses

#: finite-difference step of the varpar derivatives, relative to max(|v|, 0.1) (with Richardson's
#: extrapolation; smaller steps lose more to rounding than they gain: 1e-6 agreement here)
REL_STEP = 1e-2

COLUMNS = [
    "response",
    "effect",
    "group",
    "term",
    "estimate",
    "std_error",
    "df",
    "statistic",
    "p_value",
    "criterion",
    "converged",
    "singular",
]


def _vcov_and_deviance(
    bc: BatchCriterion, vp: np.ndarray, which: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """vcov(beta) (N, p, p) and the deviance at (theta, sigma) (N,) for points vp (N, k [+1])."""
    lay = bc.layout
    mz, p = lay.mz, lay.p
    k = bc.spec.theta_map.size
    f = bc.factor(vp[:, :k], which)
    s = vp[:, k] if bc.sigma_fixed is None else np.full(vp.shape[0], bc.sigma_fixed)
    s2 = s * s
    nu = bc.n - bc.p if bc.reml else bc.n
    dev = f.logdet_z + f.r2 / s2 + nu * (LOG_2PI + np.log(s2)) - bc.slw
    if bc.reml:
        dev = dev + f.logdet_x
    Linv = np.linalg.inv(f.LS[:, mz : mz + p, mz : mz + p])
    return s2[:, None, None] * (np.swapaxes(Linv, 1, 2) @ Linv), dev


def _differences(
    bc: BatchCriterion, vp: np.ndarray, d0: np.ndarray, h: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Central differences with steps ``h``: the Jacobian of vcov(beta) (R, m, p, p) and
    the Hessian of the deviance (R, m, m) in varpar."""
    R, m = vp.shape
    pts, pairs = stencil(vp, h, central=True)
    P = pts.shape[1]
    V, dev = _vcov_and_deviance(bc, pts.reshape(R * P, m), np.repeat(np.arange(R), P))
    V, dev = V.reshape(R, P, *V.shape[1:]), dev.reshape(R, P)
    jac = (V[:, :m] - V[:, m : 2 * m]) / (2.0 * h[:, :, None, None])
    H = np.empty((R, m, m))
    ar = np.arange(m)
    H[:, ar, ar] = (dev[:, :m] - 2.0 * d0[:, None] + dev[:, m : 2 * m]) / (h * h)
    for (i, j), v in zip(pairs, cross_terms(dev, dev[:, :m], d0, h, pairs, central=True)):
        H[:, i, j] = H[:, j, i] = v
    return jac, H


def satterthwaite_batch(bc: BatchCriterion, fits: ReplicateFits) -> tuple[np.ndarray, np.ndarray]:
    """Satterthwaite df (R, p) of every coefficient, and the SEs (R, p).

    The derivatives are central differences at steps h and h/2 combined by
    Richardson's extrapolation (error of order h^4), as the single-fit code's.
    """
    R = fits.size
    vp = fits.theta if bc.sigma_fixed is not None else np.column_stack([fits.theta, fits.sigma])
    V0, d0 = _vcov_and_deviance(bc, vp, np.arange(R))
    h = REL_STEP * np.maximum(np.abs(vp), 0.1)
    j1, H1 = _differences(bc, vp, d0, h)
    j2, H2 = _differences(bc, vp, d0, h / 2)
    jac, H = (4.0 * j2 - j1) / 3.0, (4.0 * H2 - H1) / 3.0
    finite = np.all(np.isfinite(H), axis=(1, 2)) & np.all(np.isfinite(jac), axis=(1, 2, 3))
    A = np.full_like(H, np.nan)
    if finite.any():
        A[finite] = 2.0 * np.linalg.pinv(H[finite])
    var = np.diagonal(V0, axis1=1, axis2=2)  # (R, p)
    g = np.diagonal(jac, axis1=2, axis2=3)  # (R, m, p)
    denom = np.einsum("rip,rij,rjp->rp", g, A, g)
    with np.errstate(divide="ignore", invalid="ignore"):
        df = 2.0 * var**2 / denom
    return df, np.sqrt(var)


def tidy_many(spec: Any, design: Any, cp: Any, reml: bool, Y: np.ndarray, names: list[str]) -> pd.DataFrame:
    """Fit every column of ``Y`` (n, R) and tabulate (one row per response and parameter)."""
    n_levels = [g.n_levels for g in spec.groupings]
    fits = fit_responses((spec, design, cp, reml), Y, start=spec.theta_map.initial())
    residual = spec.parsed.se is None
    R, p = fits.size, spec.p
    df = np.full((R, p), np.nan)
    se = np.full((R, p), np.nan)
    ok = fits.converged
    if batchable(cp) and ok.any():
        idx = np.flatnonzero(ok)
        bc = BatchCriterion(spec, cp, reml, response_products(design, n_levels, Y[:, idx]))
        sub = ReplicateFits(
            fits.theta[idx],
            fits.beta[idx],
            fits.sigma[idx],
            fits.criterion[idx],
            ok[idx],
            fits.singular[idx],
            0,
        )
        df[idx], se[idx] = satterthwaite_batch(bc, sub)
    for r in np.flatnonzero(ok & ~np.isfinite(df[:, 0] if p else np.zeros(R))):
        try:
            df[r], se[r] = _single_inference(spec, design, reml, Y[:, r], fits.theta[r], n_levels)
        except (np.linalg.LinAlgError, FloatingPointError, ValueError):
            continue  # no derivatives there: df and SE stay NaN
    return _table(spec, fits, df, se, names, residual)


def _single_inference(
    spec: Any, design: Any, reml: bool, y: np.ndarray, theta: np.ndarray, n_levels: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """Satterthwaite df and SEs of one response by the single-fit code (large systems)."""
    import dataclasses

    from ..linalg.crossprod import compute_crossprods
    from .inference import satterthwaite_df
    from .objective import LmmObjective
    from .solution import vcov_beta

    d = dataclasses.replace(design, y=y)
    obj = LmmObjective(spec, compute_crossprods(d, n_levels), reml=reml)
    f = obj.factor(theta)
    sigma = obj.sigma(f)
    return np.asarray(satterthwaite_df(obj, theta, sigma)), np.sqrt(np.diag(vcov_beta(obj, f, sigma)))


def _table(
    spec: Any, fits: ReplicateFits, df: np.ndarray, se: np.ndarray, names: list[str], residual: bool
) -> pd.DataFrame:
    R, p = fits.size, spec.p
    t = fits.beta / se
    pv = two_sided_t(t, df)
    vc_names = sdcor_names(spec, residual)
    vc = sdcor_values(spec, fits.theta, fits.scale, fits.sigma if residual else None)
    groups = []
    for g in spec.groupings:
        for t_ in g.terms:
            groups += [g.name] * (t_.q + t_.q * (t_.q - 1) // 2)
    if residual:
        groups.append("Residual")
    nv = len(vc_names)
    resp = np.repeat(np.asarray(names, dtype=object), p + nv)
    fixed = {
        "effect": np.tile(["fixed"] * p + ["ran_pars"] * nv, R),
        "group": np.tile([None] * p + groups, R),
        "term": np.tile([*spec.fixed_names, *vc_names], R),
        "estimate": np.column_stack([fits.beta, vc]).ravel(),
        "std_error": np.column_stack([se, np.full((R, nv), np.nan)]).ravel(),
        "df": np.column_stack([df, np.full((R, nv), np.nan)]).ravel(),
        "statistic": np.column_stack([t, np.full((R, nv), np.nan)]).ravel(),
        "p_value": np.column_stack([pv, np.full((R, nv), np.nan)]).ravel(),
    }
    per = {
        "criterion": fits.criterion,
        "converged": fits.converged,
        "singular": fits.singular & fits.converged,
    }
    out = pd.DataFrame({"response": resp, **fixed, **{k: np.repeat(v, p + nv) for k, v in per.items()}})
    return out[COLUMNS]


def tidy_fit(fit: Any, name: str) -> pd.DataFrame:
    """The tidy rows of one fit (a response fitted on its own), as :func:`tidy_many`'s."""
    spec = fit.spec
    residual = fit._residual_row is not None
    fits = ReplicateFits(
        theta=fit.theta[None],
        beta=fit.fixef.to_numpy()[None],
        sigma=np.array([fit.sigma]),
        criterion=np.array([fit.criterion]),
        converged=np.array([bool(fit.converged)]),
        singular=np.array([bool(fit.singular)]),
        batched=0,
    )
    return _table(spec, fits, fit.df.to_numpy()[None], fit.fixef_se.to_numpy()[None], [name], residual)


def failed_rows(spec: Any, name: str) -> pd.DataFrame:
    """The rows of a response that could not be fitted: NaN estimates, not converged."""
    k, p = spec.theta_map.size, spec.p
    fits = ReplicateFits(
        theta=np.full((1, k), np.nan),
        beta=np.full((1, p), np.nan),
        sigma=np.full(1, np.nan),
        criterion=np.full(1, np.nan),
        converged=np.zeros(1, dtype=bool),
        singular=np.zeros(1, dtype=bool),
        batched=0,
    )
    nan = np.full((1, p), np.nan)
    return _table(spec, fits, nan, nan, [name], spec.parsed.se is None)
