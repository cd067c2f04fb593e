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

from ..family.derivatives import eta_derivatives, eta_derivatives_ddisp, has_third_derivatives
from ..linalg import numpy_backend as la
from ..linalg.crossprod import as_dense
from ..linalg.factor import Factor
from ..linalg.lambdas import times_lambda
from ..model.design import z_times_b
from .pirls import GlmmProblem, PirlsResult

#: largest first-to-rest block of M^{-1} (n1 q1 x mz entries) the gradient forms
MAX_CROSS_ENTRIES = 20_000_000


def gradient_available(prob: GlmmProblem) -> bool:
    """Whether the analytic gradient applies to this model's size (and, for the
    observed-information Laplace, whether the family and link give the third
    derivative of the log density it needs). Not for lme4's criterion of a family
    with a scale dispersion (``prob.lme4_criterion``): its fits use BOBYQA and
    Hessians from differences of the criterion."""
    lay = prob.builder_u.layout
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


class _Gathers:
    """Each observation's scaled Z row ``x_i = Lambda'z_i`` and ``y_i = M^{-1} x_i``
    at its own levels, per grouping block, from the blocks of ``M^{-1}``."""

    def __init__(self, prob: GlmmProblem, B: _Blocks, Ts: list[np.ndarray]) -> None:
        groups = prob.design.groups
        n1, q1, mz = B.U.shape
        c1 = groups[0].codes
        x1 = groups[0].values @ Ts[0]
        if q1 == 1:
            M1inv = 1.0 / (B.L1 * B.L1)
        else:
            M1inv = np.linalg.inv(B.L1)
            M1inv = np.swapaxes(M1inv, 1, 2) @ M1inv
        if mz == 0:
            self.x = [x1]
            self.y = [np.einsum("iab,ib->ia", M1inv[c1], x1)]
            return
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
        xs = [x1] + [gd.values @ T for T, gd in zip(Ts[1:], groups[1:])]
        xR = np.concatenate(xs[1:], axis=1)  # (n, r)
        colsR = prob.builder_u.zc  # each row's columns among the rest (n, r)
        if q1 == 1:
            C = S1R[c1[:, None], 0, colsR]  # (n, r)
            y1 = S11[c1, 0, 0][:, None] * x1 + np.einsum("ir,ir->i", C, xR)[:, None]
            yR = C * x1
        else:
            C3 = S1R[c1[:, None], :, colsR]  # (n, r, q1)
            y1 = np.einsum("iab,ib->ia", S11[c1], x1) + np.einsum("ira,ir->ia", C3, xR)
            yR = np.einsum("ira,ia->ir", C3, x1)
        yR = yR + np.einsum("irs,is->ir", SRR[colsR[:, :, None], colsR[:, None, :]], xR)
        self.x = xs
        self.y = [y1]
        start = 0
        for x in xs[1:]:
            self.y.append(yR[:, start : start + x.shape[1]])
            start += x.shape[1]

    def leverages(self) -> np.ndarray:
        out = np.zeros(self.x[0].shape[0])
        for x, y in zip(self.x, self.y):
            out += np.einsum("ia,ia->i", x, y)
        return out


def _per_level(codes: np.ndarray, values: np.ndarray, weights: np.ndarray, n_levels: int) -> np.ndarray:
    """``Z_k' weights`` as (n_levels, q)."""
    out = np.empty((n_levels, values.shape[1]))
    for a in range(values.shape[1]):
        out[:, a] = np.bincount(codes, weights=weights * values[:, a], minlength=n_levels)
    return out


@dataclass(frozen=True)
class _RowTerms:
    """Per-observation derivatives of the conditional log-likelihood at the mode."""

    W: np.ndarray  # the weights of the log-determinant: expected, or observed (= H)
    score: np.ndarray  # dl / deta
    H: np.ndarray  # -d^2 l / deta^2 (observed): the mode's sensitivity
    dW: np.ndarray  # dW / deta
    same: bool  # W == H: one factor serves the determinant and the mode
    dW_disp: np.ndarray | None  # d W / d dispersion at fixed eta
    dscore_disp: np.ndarray | None  # d score / d dispersion at fixed eta


def _row_terms(prob: GlmmProblem, r: PirlsResult, disp: float) -> _RowTerms:
    fam = prob.family
    y, w0, eta, mu = prob.y, prob.w0, r.eta, r.mu
    d = eta_derivatives(fam, y, eta, mu, w0, disp, third=prob.observed)
    dW_disp = dscore_disp = None
    if prob.observed:
        # observed Laplace: the determinant's weights are the observed ones
        assert d.dhessian is not None
        if fam.has_dispersion:
            dscore_disp, dW_disp = eta_derivatives_ddisp(fam, y, eta, mu, w0, disp)
        return _RowTerms(d.hessian, d.score, d.hessian, d.dhessian, True, dW_disp, dscore_disp)
    link = fam.link
    mu_eta, mu_eta2 = d.mu_eta, link.mu_eta2(eta)
    var = fam.variance(mu, disp)
    w_var = w0 / var
    W = w_var * mu_eta**2
    bend = mu_eta**2 * fam.dvariance(mu, disp) / var  # the variance's change along eta, per mu_eta'
    dW = w_var * mu_eta * (2.0 * mu_eta2 - bend)
    if fam.has_dispersion:
        dvd = fam.dvariance_ddisp(mu, disp)
        dW_disp = -w0 * mu_eta**2 * dvd / var**2
        dscore_disp = -w0 * (y - mu) * mu_eta * dvd / var**2
    if fam.canonical:
        # d theta / d eta is constant: observed and expected information agree
        return _RowTerms(W, d.score, W, dW, True, dW_disp, dscore_disp)
    H = d.hessian
    same = bool(np.max(np.abs(H - W)) <= 1e-9 * max(float(np.max(np.abs(W))), 1e-300))
    return _RowTerms(W, d.score, H, dW, same, dW_disp, dscore_disp)


def _curvature_blocks(r: PirlsResult) -> _Blocks:
    """Blocks of the factor of the Laplace approximation's curvature."""
    c = r.curvature
    if c is None:
        raise np.linalg.LinAlgError("the observed information is not positive definite")
    return _blocks(*c)


def _h_blocks(prob: GlmmProblem, r: PirlsResult, t: _RowTerms, theta: np.ndarray) -> _Blocks:
    """Blocks of the factor with the observed information H as weights (the
    Hessian of the penalized log-likelihood in u)."""
    # the response column is not used; any response outside the span of Z will do
    cpH = prob.builder_u.compute(np.cos(np.arange(prob.n) * 1.618), t.H, log_weights=False)
    systemH = la.system(cpH)
    return _blocks(systemH, la.factor(systemH, prob.spec.templates(theta)))


def laplace_gradient(
    prob: GlmmProblem, r: PirlsResult, theta: np.ndarray, beta: np.ndarray, disp: float
) -> np.ndarray:
    """d D / d (theta, beta[, log disp]) at the mode of u given (theta, beta)."""
    return _laplace_gradient(prob, r, theta, disp, _row_terms(prob, r, disp))


def _laplace_gradient(
    prob: GlmmProblem, r: PirlsResult, theta: np.ndarray, disp: float, t: _RowTerms
) -> np.ndarray:
    fam = prob.family
    spec, design = prob.spec, prob.design
    Ts = spec.templates(theta)
    W, score, H, dW = t.W, t.score, t.H, t.dW

    B = _curvature_blocks(r)
    gat = _Gathers(prob, B, Ts)
    h = gat.leverages()
    v = h * dW

    # a = M_H^{-1} Lambda'Z' v
    groups = design.groups
    c = [_per_level(gd.codes, gd.values, v, g.n_levels) @ T for g, T, gd in zip(spec.groupings, Ts, groups)]
    cR = np.concatenate([x.ravel() for x in c[1:]]) if len(c) > 1 else np.zeros(0)
    BH = B if t.same else _h_blocks(prob, r, t, theta)
    a1, aR = _solve(BH, c[0], cR)
    a = [a1, *_split_rest(prob, aR)]
    zla = z_times_b(design, [ak @ T.T for ak, T in zip(a, Ts)])
    g = -2.0 * score + v - H * zla

    grad_beta = design.X.T @ g
    tm = spec.theta_map
    per_block = []
    for k, (gspec, gd) in enumerate(zip(spec.groupings, groups)):
        Zg = _per_level(gd.codes, gd.values, g, gspec.n_levels)
        Zr = _per_level(gd.codes, gd.values, score, gspec.n_levels)
        trace = gd.values.T @ (W[:, None] * gat.y[k])
        per_block.append(Zg.T @ r.u[k] + 2.0 * trace + Zr.T @ a[k])
    grad_theta = np.array([per_block[b][i, j] for b, i, j in zip(tm.block, tm.row, tm.col)])
    out = [grad_theta, grad_beta]
    if fam.has_dispersion:
        assert t.dW_disp is not None and t.dscore_disp is not None
        dl = float(np.sum(fam.dlogpdf_ddisp(prob.y, r.mu, prob.w0, disp)))
        d_disp = -2.0 * dl + float(h @ t.dW_disp) + float(zla @ t.dscore_disp)
        out.append(np.array([d_disp * disp]))
    return np.concatenate(out)
