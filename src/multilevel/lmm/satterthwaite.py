"""Satterthwaite's denominator df for tests of ``L beta = rhs`` (lmerTest's method).

With ``varpar = (theta, sigma)``, ``A = 2 H^{-1}`` from the Hessian of the deviance in
varpar and ``J_k = d vcov(beta) / d varpar_k``, a single contrast ``l`` has
``df = 2 (l'Cl)^2 / (g'Ag)``, ``g_k = l'J_k l`` (Kuznetsova et al. 2017). Several rows
are rotated to the eigenvectors of ``L C L'`` (rows with eigenvalues below
``sqrt(eps)`` times the largest are dropped, which gives the test's rank ``q``); each
rotated row has its own ``nu_m``, and the F statistic's df is ``2E / (E - q)`` with
``E = sum nu_m / (nu_m - 2)`` (2 when some ``nu_m <= 2``). The rotation makes the df
depend on the basis of L's rows, so anova tables use lmerTest's rows
(:mod:`multilevel.model.hypotheses`). The derivatives are the same Richardson-extrapolated
differences as :func:`multilevel.lmm.inference.satterthwaite_df` (numDeriv's, which
lmerTest uses), kept here with the vcov's Jacobian, which that function does not return.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..optim.numdiff import jacobian_hessian
from .ftest import FTest, empty_test, make_test
from .objective import Factor, LmmObjective
from .solution import vcov_beta


@dataclass(frozen=True)
class VarparDerivatives:
    """``vcov(beta)`` and its derivatives in varpar, and ``A`` = 2 x inverse Hessian of
    the deviance in varpar (lmerTest's ``Jac_list`` and ``vcov_varpar``)."""

    vcov: np.ndarray  # (p, p)
    jacobian: np.ndarray  # (k, p, p)
    vcov_varpar: np.ndarray  # (k, k)


def varpar_derivatives(obj: LmmObjective, theta: np.ndarray, sigma: float) -> VarparDerivatives:
    """lmerTest's derivatives at (theta, sigma), by Richardson-extrapolated differences.

    Examples
    --------
    >>> import multilevel
    >>> m = multilevel.fit("Reaction ~ Days + (Days | Subject)", multilevel.load_dataset("sleepstudy"))
    >>> varpar_derivatives(m.objective, m.theta, m.sigma).jacobian.shape
    (4, 2, 2)
    """
    cache: dict[bytes, Factor] = {}
    k, p = theta.size, obj.p
    fixed = obj.sigma_fixed

    def factor(t: np.ndarray) -> Factor:
        key = np.asarray(t, dtype=float).tobytes()
        if key not in cache:
            cache[key] = obj.factor(t)
        return cache[key]

    def F(vp: np.ndarray) -> np.ndarray:
        f = factor(vp[:k])
        s = vp[k] if fixed is None else fixed
        return np.concatenate([[obj.deviance_at(f, s)], vcov_beta(obj, f, s).ravel()])

    vp = np.concatenate([theta, [sigma]]) if fixed is None else np.asarray(theta, dtype=float)
    J, H = jacobian_hessian(F, vp)
    try:
        A = 2.0 * np.linalg.inv(H)
    except np.linalg.LinAlgError:
        A = 2.0 * np.linalg.pinv(H)
    jac = np.stack([J[1:, i].reshape(p, p) for i in range(vp.size)])
    return VarparDerivatives(vcov_beta(obj, factor(theta), sigma), jac, A)


def contrast_df(l: np.ndarray, d: VarparDerivatives) -> float:
    """Satterthwaite df of the single contrast ``l'beta`` (lmerTest's ``contest1D``).

    Examples
    --------
    >>> import multilevel
    >>> m = multilevel.fit("Reaction ~ Days + (Days | Subject)", multilevel.load_dataset("sleepstudy"))
    >>> round(contrast_df(np.array([1.0, 0.0]), varpar_derivatives(m.objective, m.theta, m.sigma)), 2)
    17.0
    """
    var = float(l @ d.vcov @ l)
    g = np.array([l @ Jk @ l for Jk in d.jacobian])
    denom = float(g @ d.vcov_varpar @ g)
    return 2.0 * var**2 / denom if denom > 0 else math.inf


def fstat_ddf(nu: np.ndarray, tol: float = 1e-8) -> float:
    """lmerTest's ``get_Fstat_ddf``: the F statistic's df from the per-row ``nu_m``.

    Examples
    --------
    >>> round(fstat_ddf(np.array([10.0, 20.0])), 3)
    13.077
    """
    if nu.size == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(np.mean(nu))
    if np.any(nu <= 2):
        return 2.0
    E = float(np.sum(nu / (nu - 2)))
    return 2.0 * E / (E - nu.size)


def satterthwaite_test(
    L: np.ndarray, beta: np.ndarray, d: VarparDerivatives, sigma: float, rhs: np.ndarray | None = None
) -> FTest:
    """lmerTest's ``contestMD`` (Satterthwaite) for the rows of ``L``.

    Examples
    --------
    >>> import multilevel
    >>> m = multilevel.fit("Reaction ~ Days + (Days | Subject)", multilevel.load_dataset("sleepstudy"))
    >>> d = varpar_derivatives(m.objective, m.theta, m.sigma)
    >>> round(satterthwaite_test(np.array([[0.0, 1.0]]), m.fixef.to_numpy(), d, m.sigma).den_df, 2)
    17.0
    """
    method = "satterthwaite"
    rhs = np.zeros(L.shape[0]) if rhs is None else np.broadcast_to(np.asarray(rhs, float), (L.shape[0],))
    if L.shape[0] == 0:
        return empty_test(method)
    if L.shape[0] == 1:
        l = L[0]
        t = (float(l @ beta) - rhs[0]) / math.sqrt(float(l @ d.vcov @ l))
        return make_test(t * t, 1, contrast_df(l, d), sigma, method)
    b = beta - np.linalg.pinv(L) @ rhs if np.any(rhs != 0) else beta
    vals, vecs = np.linalg.eigh(L @ d.vcov @ L.T)
    order = np.argsort(vals)[::-1]
    vals, vecs = vals[order], vecs[:, order]
    pos = vals > max(math.sqrt(np.finfo(float).eps) * vals[0], 0.0)
    q = int(pos.sum())
    if q == 0:
        return empty_test(method)
    PtL = (vecs.T @ L)[:q]
    if q == 1:
        return satterthwaite_test(PtL, beta, d, sigma, rhs=None if np.all(rhs == 0) else rhs[:1])
    F = float(np.sum((PtL @ b) ** 2 / vals[:q]) / q)
    nu = np.array([2.0 * vals[m] ** 2 / _gag(PtL[m], d) for m in range(q)])
    return make_test(F, q, fstat_ddf(nu), sigma, method)


def _gag(l: np.ndarray, d: VarparDerivatives) -> float:
    g = np.array([l @ Jk @ l for Jk in d.jacobian])
    return float(g @ d.vcov_varpar @ g)
