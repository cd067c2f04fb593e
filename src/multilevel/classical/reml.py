"""REML variance components of the ``Error()`` model, for comparison with the moment estimates.

The model ``y = X beta + sum_k Z_k u_k + e``, ``u_k ~ N(0, sigma2_k I)``, ``e ~ N(0,
sigma2 I)``, is the mixed model ``y ~ treatments + (1 | term_1) + ...``. With the
relative scales ``theta_k = sigma_k / sigma`` (``Lambda`` their diagonal over the
levels) and ``S = I + Lambda Z'Z Lambda``, Woodbury's identity gives every quadratic
form in ``V^{-1} = (I + Z Lambda^2 Z')^{-1}`` from the cross-products of ``[Z X y]``:
``a' V^{-1} b = a'b - (L^{-1} Lambda Z'a)' (L^{-1} Lambda Z'b)`` with ``L`` the
Cholesky factor of ``S``, and ``log|V| = log|S|``. The profiled REML criterion

    (n - p) log(r' V^{-1} r / (n - p)) + log|S| + log|X' V^{-1} X|

is minimized over ``theta >= 0`` by BOBYQA, so a component whose moment estimate is
negative comes out at 0 (a boundary, not a clip).

>>> import numpy as np
>>> codes = np.repeat(np.arange(3), 2)
>>> y = np.array([1.0, 2.0, 4.0, 5.0, 3.0, 3.5])
>>> est = reml_components(y, np.ones((6, 1)), [codes])
>>> [round(v, 4) for v in est.values]
[2.0833, 0.375]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..optim.optimize import bobyqa


@dataclass(frozen=True)
class RemlComponents:
    """REML estimates: one per error term, then the residual; the optimizer's verdict."""

    values: tuple[float, ...]
    criterion: float
    evaluations: int
    return_code: str


def reml_components(
    y: np.ndarray, X: np.ndarray, cells: Sequence[np.ndarray], start: np.ndarray | None = None
) -> RemlComponents:
    """REML variance components of ``y`` with fixed columns ``X`` and the error cells ``cells``.

    ``start`` are starting relative scales ``theta`` (one per error term); by default 1.
    """
    n = y.shape[0]
    U, s, _ = np.linalg.svd(X, full_matrices=False)
    Xr = U[:, s > 1e-10 * max(1.0, float(s.max(initial=0.0)))]
    p = Xr.shape[1]
    if n <= p:
        return RemlComponents((math.nan,) * (len(cells) + 1), math.nan, 0, "no residual df")
    sizes = [int(c.max()) + 1 for c in cells]
    cols = [o + c for o, c in zip(np.cumsum([0, *sizes[:-1]]), cells, strict=True)]  # columns of Z
    # the GLS residual is the same for y and for y less any column of X; the OLS residual
    # keeps r'V^{-1}r from cancelling against y'V^{-1}y (a response far from 0)
    M = np.column_stack([Xr, y - Xr @ (Xr.T @ y)])
    ZtM, MtM = np.zeros((sum(sizes), M.shape[1])), M.T @ M
    for c in cols:
        np.add.at(ZtM, c, M)
    # one error term: Z'Z is the diagonal of the cell counts, and so is S
    counts = np.bincount(cols[0], minlength=sizes[0]).astype(float) if len(cells) == 1 else None
    ZtZ = np.zeros((0, 0)) if counts is not None else _crossed_counts(cols, sum(sizes))
    reps = np.repeat(np.arange(len(sizes)), sizes)

    def criterion(theta: np.ndarray) -> tuple[float, float]:
        lam = theta[reps]
        if counts is not None:
            d = 1.0 + lam * lam * counts
            B = (lam / np.sqrt(d))[:, None] * ZtM
            logdet_s = float(np.sum(np.log(d)))
        else:
            L = np.linalg.cholesky(np.eye(lam.size) + lam[:, None] * ZtZ * lam[None, :])
            B = np.linalg.solve(L, lam[:, None] * ZtM)
            logdet_s = 2.0 * float(np.sum(np.log(np.diag(L))))
        A = MtM - B.T @ B
        Lx = np.linalg.cholesky(A[:p, :p])
        c = np.linalg.solve(Lx, A[:p, p])
        rss = float(A[p, p] - c @ c)
        if not rss > 0:
            return math.inf, math.nan
        logdet = logdet_s + 2.0 * float(np.sum(np.log(np.diag(Lx))))
        return (n - p) * math.log(rss / (n - p)) + logdet, rss / (n - p)

    x0 = np.ones(len(sizes)) if start is None else np.maximum(np.asarray(start, dtype=float), 0.0)
    theta, fval, evals, code, _ = bobyqa(
        lambda t: criterion(t)[0], x0, np.zeros(len(sizes)), ftol_rel=0.0, xtol_abs=1e-13
    )
    # a scale that BOBYQA leaves a rounding error above its bound is at the bound
    at_zero = np.where(theta < 1e-7, 0.0, theta)
    if criterion(at_zero)[0] <= fval + 1e-10:
        theta, fval = at_zero, criterion(at_zero)[0]
    sigma2 = criterion(theta)[1]
    values = (*(float(t * t * sigma2) for t in theta), sigma2)
    return RemlComponents(values, float(fval), int(evals), code)


def _crossed_counts(cols: Sequence[np.ndarray], q: int) -> np.ndarray:
    """``Z'Z``: how many rows each pair of columns of ``Z`` share."""
    ZtZ = np.zeros((q, q))
    for a in cols:
        for b in cols:
            np.add.at(ZtZ, (a, b), 1.0)
    return ZtZ
