"""Analytic gradient of the Laplace deviance in (theta, beta, log dispersion).

With ``eta = o + X beta + Z Lambda u``, ``l(eta)`` the conditional log-likelihood,
``u`` its penalized mode (``Lambda'Z' r = u``, ``r = dl/deta``), ``W`` the working
(Fisher) weights and ``M = Lambda'Z'WZ Lambda + I = L L'``, the Laplace deviance
is ``D = -2 l(eta) + |u|^2 + log|M|``. For a parameter ``psi`` (``d_psi`` the
derivative of eta at fixed u):

    dD/dpsi = -2 r' d_psi + 2 tr(M^{-1} Lambda'Z'WZ dLambda) + v'(d_psi + Z Lambda du/dpsi)

with ``v_i = h_i dW_i/deta_i`` and ``h_i = z_i'Lambda M^{-1} Lambda'z_i`` the
leverage of observation i. The mode moves as ``du/dpsi = M_H^{-1} (dLambda' Z'r
- Lambda'Z'H d_psi)``, ``H = -d^2 l / deta^2`` (equal to ``W`` for canonical
links), so one solve ``a = M_H^{-1} Lambda'Z'v`` serves every parameter:

    dD/dbeta   = X' g,          g = -2 r + v - H (Z Lambda a)
    dD/dtheta  = g'Z dLambda u + 2 tr(...) + a' dLambda' Z'r

The trace needs, per observation, ``y_i = M^{-1} Lambda'z_i`` at the
observation's own levels, the same gather that gives ``h_i = x_i'y_i``; both
come from the diagonal and first-to-rest blocks of ``M^{-1}``, which the blocked
factor gives without forming ``M^{-1}`` whole. No ``T^{-1}`` appears, so the
gradient holds on the boundary (a variance at 0) too.

That is lme4's (expected-information) Laplace deviance. The observed-information
one (the default for non-canonical links) has ``W = H`` in ``M``: then ``M = M_H``,
one factor serves both, and ``dW/deta = dH/deta = -d^3 l / deta^3`` needs the
third derivative of the log density (:mod:`multilevel.family.derivatives`). A
family or link without it gets no analytic gradient (:func:`gradient_available`),
so the fit differences the deviance instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import lapack, solve_triangular

from ..family.derivatives import has_third_derivatives
from ..linalg import numpy_backend as la
from ..linalg.crossprod import as_dense
from ..linalg.factor import Factor
from ..linalg.lambdas import times_lambda
from .pirls import GlmmProblem, PirlsResult

#: largest first-to-rest block of M^{-1} (n1 q1 x mz entries) the gradient forms
MAX_CROSS_ENTRIES = 20_000_000


def gradient_available(prob: GlmmProblem) -> bool:
    """Whether the analytic gradient applies to this model's size (and, for the
    observed-information Laplace, whether the family and link give the third
    derivative of the log density it needs). Not for lme4's criterion of a family
    with a scale dispersion (``prob.lme4_criterion``): its fits use BOBYQA and
    Hessians from differences of the criterion."""
    lay = prob.layout_u
    if prob.observed and not has_third_derivatives(prob.family):
        return False
    if prob.lme4_criterion:  # lme4's criterion is not this module's deviance
        return False
    return lay.n1 * lay.q1 * max(lay.mz, 1) <= MAX_CROSS_ENTRIES


@dataclass(frozen=True)
class _Blocks:
    """Pieces of the blocked factor ``L = [[L1, 0], [U', L_Z]]`` of M (Z part only)."""

    L1: np.ndarray  # (n1, q1, q1)
    U: np.ndarray  # (n1, q1, mz)
    LZ: np.ndarray  # (mz, mz) lower


def _blocks(system: la.NumpySystem, f: Factor) -> _Blocks:
    """The random-effect (Z) part of a factor, whatever columns follow it."""
    lay = system.layout
    n1, q1, mz = lay.n1, lay.q1, lay.mz
    if mz == 0:
        return _Blocks(f.L1, np.zeros((n1, q1, 0)), np.zeros((0, 0)))
    A = as_dense(system.A1R)[:, :mz].reshape(n1, q1, mz)
    # T1' A_l Lambda_R
    TA = times_lambda(np, np.einsum("ba,lbj->laj", f.templates[0], A), f.templates[1:], lay.rest)
    if q1 == 1:
        U = TA / f.L1
    else:
        U = np.linalg.solve(f.L1, TA)
    return _Blocks(f.L1, U, np.asarray(f.LS[:mz, :mz]))


def _solve(B: _Blocks, c1: np.ndarray, cR: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``M x = c`` for c split as (first block (n1, q1), rest (mz,))."""
    q1 = B.L1.shape[1]
    if q1 == 1:
        y1 = c1 / B.L1[:, :, 0]
    else:
        y1 = np.linalg.solve(B.L1, c1[:, :, None])[:, :, 0]
    if cR.size:
        yR = solve_triangular(B.LZ, cR - np.einsum("lam,la->m", B.U, y1), lower=True, check_finite=False)
        xR = solve_triangular(B.LZ, yR, lower=True, trans="T", check_finite=False)
        rhs1 = y1 - np.einsum("lam,m->la", B.U, xR)
    else:
        xR = cR
        rhs1 = y1
    if q1 == 1:
        x1 = rhs1 / B.L1[:, :, 0]
    else:
        x1 = np.linalg.solve(np.swapaxes(B.L1, 1, 2), rhs1[:, :, None])[:, :, 0]
    return x1, xR


def _split_rest(prob: GlmmProblem, xR: np.ndarray) -> list[np.ndarray]:
    out = []
    start = 0
    for g in prob.spec.groupings[1:]:
        out.append(xR[start : start + g.size].reshape(g.n_levels, g.q))
        start += g.size
    return out


def inverse_blocks(B: _Blocks) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The blocks of ``M^{-1}`` the rows' gathers need: ``S11`` (n1, q1, q1) per level of
    the first block, ``S1R`` (n1, q1, mz) and ``SRR`` (mz, mz) (None without a rest)."""
    n1, q1, mz = B.U.shape
    if q1 == 1:
        M1inv = 1.0 / (B.L1 * B.L1)
    else:
        M1inv = np.linalg.inv(B.L1)
        M1inv = np.swapaxes(M1inv, 1, 2) @ M1inv
    if mz == 0:
        return M1inv, None, None
    SRR, info = lapack.dpotri(np.array(B.LZ, order="F"), lower=1)
    if info != 0:
        raise np.linalg.LinAlgError("cannot invert the dense factor")
    SRR = np.tril(SRR) + np.tril(SRR, -1).T
    # V = L1^{-T} U; S_1R = -V S_RR; S_11 = (L1 L1')^{-1} + V S_RR V'
    if q1 == 1:
        V = B.U / B.L1
    else:
        V = np.linalg.solve(np.swapaxes(B.L1, 1, 2), B.U)
    S1R = -(V.reshape(n1 * q1, mz) @ SRR).reshape(n1, q1, mz)
    S11 = M1inv - np.einsum("lam,lbm->lab", S1R, V)
    return S11, S1R, SRR


def _curvature_blocks(r: PirlsResult) -> _Blocks:
    """Blocks of the factor of the Laplace approximation's curvature."""
    c = r.curvature
    if c is None:
        raise np.linalg.LinAlgError("the observed information is not positive definite")
    return _blocks(*c)


def laplace_gradient(
    prob: GlmmProblem, r: PirlsResult, theta: np.ndarray, beta: np.ndarray, disp: float
) -> np.ndarray:
    """d D / d (theta, beta[, log disp]) at the mode of u given (theta, beta): two passes
    over the rows (:meth:`~multilevel.glmm.rows.GlmmRows.gradient_rows` and
    :meth:`~multilevel.glmm.rows.GlmmRows.gradient_sums`), the solves between them."""
    fam, spec = prob.family, prob.spec
    Ts = spec.templates(theta)
    B = _curvature_blocks(r)
    inverse = inverse_blocks(B)
    g, (c_raw, gap, scale) = prob.rows.run("gradient_rows", r.state, inverse, Ts, disp, prob.observed)
    # one factor serves the determinant and the mode where W == H
    same = prob.observed or fam.canonical or gap.value <= 1e-9 * max(scale.value, 1e-300)
    # a = M_H^{-1} Lambda'Z' v
    c = [ck @ T for ck, T in zip(c_raw, Ts)]
    cR = np.concatenate([x.ravel() for x in c[1:]]) if len(c) > 1 else np.zeros(0)
    BH = B
    if not same:
        _, cpH = prob.rows.run("gradient_curvature", g)
        systemH = la.system(cpH)
        BH = _blocks(systemH, la.factor(systemH, Ts))
    a1, aR = _solve(BH, c[0], cR)
    a = [a1, *_split_rest(prob, aR)]
    _, (grad_beta, zg, zr, tr, disp_terms) = prob.rows.run(
        "gradient_sums", g, [ak @ T.T for ak, T in zip(a, Ts)], disp
    )
    per_block = [zg[k].T @ r.u[k] + 2.0 * tr[k] + zr[k].T @ a[k] for k in range(len(Ts))]
    tm = spec.theta_map
    grad_theta = np.array([per_block[b][i, j] for b, i, j in zip(tm.block, tm.row, tm.col)])
    out = [grad_theta, grad_beta]
    if fam.has_dispersion:
        d_disp = -2.0 * disp_terms[0] + disp_terms[1] + disp_terms[2]
        out.append(np.array([d_disp * disp]))
    return np.concatenate(out)
