"""The Laplace deviance of a nonlinear mixed model and its exact gradient, in NumPy.

The same objective as :mod:`multilevel.nlmm.laplace` (lme4's ``nlmer`` criterion,
sigma profiled): PNLS for the modes ``u*`` (Newton where the full Hessian of the
penalized residual sum of squares is positive definite, else Gauss-Newton, with step
halving), then ``D = log|A| + n (1 + log(2 pi pwrss / n))``, ``A = J'J + I``. The
mean's derivatives come from second-order jets (:mod:`multilevel.nlmm.jets`), so
nothing is traced or compiled and the first fit costs what the next ones do.

The gradient over ``x = (beta, theta)`` is the total derivative along the modes:
``dD/dx = dD/dx|_u + dD/du . du*/dx`` with ``du*/dx = H^-1 dg/dx`` (``g = J'r - u``, ``H``
the Hessian of ``pwrss / 2``; implicit function theorem). Every piece needs only
the mean's first and second derivatives:

- ``d log|A|/dv = 2 tr(A^-1 J' dJ/dv)``; with ``P = J A^-1`` and
  ``w_k = rowsum(ZL_k * P)``, ``s_m = sum_k f_km w_k``: along u ``2 sum_m ZL_m' s_m``,
  along beta ``2 sum_m X_m' s_m``, along theta_l ``2 sum_m s_m . d_ml`` plus
  ``2 sum_k f_k . rowsum((Z_k Lambda_l) * P)``, where ``d_ml = Z_m Lambda_l u`` and
  ``Lambda_l = dLambda/dtheta_l``;
- ``dpwrss/dbeta = -2 sum_m X_m' (r f_m)``, ``dpwrss/dtheta_l = -2 sum_m (r f_m) . d_ml``;
- ``dg/dbeta = sum_m G_m' X_m``, ``dg/dtheta_l = sum_k Lambda_l' Z_k' (f_k r) + sum_m G_m' d_ml``
  with ``G_m = sum_k (r f_km - f_k f_m) ZL_k``.

Tests check it against the JAX objective's automatic derivative.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..model.nonlinear import NlmmProblem
from .jets import mean_jet, plain_value, program

MAX_ITER = 300
MAX_HALVINGS = 20
PREDICTED_TOL = 1e-15  # of the predicted decrease of pwrss, relative


def jacobian(grad: np.ndarray, ZL: np.ndarray) -> np.ndarray:
    """``J = sum_k f_k ZL_k`` (n, q) from the mean's gradient (n, K) and ZL (n, K, q)."""
    return (grad[:, None, :] @ ZL)[:, 0, :]


def curvature(weighted_hess: np.ndarray, ZL: np.ndarray) -> np.ndarray:
    """``sum_n ZL_n' W_n ZL_n`` (q, q) for per-row (K, K) weights W: the second-derivative
    part of the modes' Hessian."""
    n, K, q = ZL.shape
    return ZL.reshape(n * K, q).T @ (weighted_hess @ ZL).reshape(n * K, q)


def halving_step(f: Any, u: np.ndarray, delta: np.ndarray, old: float) -> tuple[float, float]:
    """The step ``size`` (1, halved up to MAX_HALVINGS times) at which ``f(u + size delta)``
    is no worse than ``old``, and that value (the last one tried if none is)."""
    size, new, halvings = 1.0, f(u + delta), 0
    while not new <= old and halvings < MAX_HALVINGS:
        size *= 0.5
        new = f(u + size * delta)
        halvings += 1
    return size, new


class NumpyLaplace:
    """PNLS, the Laplace deviance and its gradient for one problem; the last modes are
    the next start (as lme4 does)."""

    def __init__(self, problem: NlmmProblem) -> None:
        self.problem = problem
        self.tree = problem.mean.tree
        self.steps = program(self.tree)  # looked up once: hashing the tree walks it
        self.params = problem.param_names
        self.X = problem.X
        self.Z = problem.Z
        # rows first, (n, K, p) and (n, K, q): every product below is one matrix product
        self.Xt = np.ascontiguousarray(problem.X.transpose(1, 0, 2))
        self.Zt = np.ascontiguousarray(problem.Z.transpose(1, 0, 2))
        self.y = problem.y
        self.cov = problem.covariates
        r, c, i = problem.lambda_index()
        self.lam_r, self.lam_c, self.lam_i = r, c, i
        self.u_start = np.zeros(problem.q)
        self.n_pnls = 0
        self._tangent: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        n, K = problem.n, len(problem.param_names)
        self._seeds = [np.ascontiguousarray(np.broadcast_to(np.eye(K)[k], (n, K))) for k in range(K)]
        # per theta: Lambda_l's nonzero (row, col) places and the Z columns they read
        self._theta_places = []
        for ell in range(problem.n_theta):
            sel = i == ell
            self._theta_places.append((r[sel], c[sel], self.Zt[:, :, r[sel]]))

    def reset(self) -> None:
        self.u_start = np.zeros(self.problem.q)
        self._tangent = None

    def _predicted_start(self, x: np.ndarray) -> np.ndarray | None:
        """The modes on the tangent line at the last gradient's point (taken where they
        fit better than the last modes)."""
        if self._tangent is None:
            return None
        x0, u0, du_dx = self._tangent
        guess = u0 + du_dx @ (x - x0)
        return guess if np.all(np.isfinite(guess)) else None

    # ---- pieces --------------------------------------------------------------
    def lam(self, theta: np.ndarray) -> np.ndarray:
        q = self.problem.q
        out = np.zeros((q, q))
        out[self.lam_r, self.lam_c] = np.asarray(theta, float)[self.lam_i]
        return out

    def _mean(self, phi: np.ndarray) -> np.ndarray:
        env = dict(self.cov)
        env.update({k: phi[:, j] for j, k in enumerate(self.params)})
        return np.broadcast_to(np.asarray(plain_value(self.steps, env), dtype=float), (phi.shape[0],))

    def _base(self, beta: np.ndarray) -> np.ndarray:
        """The fixed part of the parameters, (n, K)."""
        return self.Xt @ np.asarray(beta, float)

    def _zl(self, theta: np.ndarray) -> np.ndarray:
        """``Z Lambda`` rows first, (n, K, q)."""
        n, K, q = self.Zt.shape
        return (self.Zt.reshape(n * K, q) @ self.lam(theta)).reshape(n, K, q)

    def _phi(self, base: np.ndarray, ZL: np.ndarray, u: np.ndarray) -> np.ndarray:
        return base + ZL @ u

    def _system(self, base: np.ndarray, ZL: np.ndarray, u: np.ndarray) -> tuple[Any, ...]:
        """Jet at u, the Jacobian J (n, q), residuals, the Gauss-Newton and full Hessians."""
        jet = mean_jet(self.tree, self.params, self._phi(base, ZL, u), self.cov, self._seeds, self.steps)
        J = jacobian(jet.grad, ZL)
        r = self.y - jet.value
        A = J.T @ J
        A[np.diag_indices_from(A)] += 1.0
        return jet, J, r, A, A - curvature(r[:, None, None] * jet.hess, ZL)

    # ---- the modes -----------------------------------------------------------
    def modes(self, beta: np.ndarray, theta: np.ndarray) -> dict[str, Any]:
        """PNLS from the last modes: u, pwrss, log|A|, iterations, convergence, mu, and the
        system at the modes (for the gradient)."""
        beta = np.asarray(beta, float)
        base, ZL = self._base(beta), self._zl(theta)

        def pwrss(v: np.ndarray) -> float:
            e = self.y - self._mean(self._phi(base, ZL, v))
            return float(e @ e + v @ v)

        u = self.u_start.copy()
        old = pwrss(u)
        guess = self._predicted_start(np.concatenate([beta, np.asarray(theta, float)]))
        if guess is not None:
            at_guess = pwrss(guess)
            if at_guess < old:
                u, old = guess, at_guess
        done, it = False, 0
        with np.errstate(all="ignore"):
            system = self._system(base, ZL, u)
            while it < MAX_ITER and math.isfinite(old):
                jet, J, r, A, H = system
                grad = J.T @ r - u
                try:
                    gn = np.linalg.solve(A, grad)
                except np.linalg.LinAlgError:  # a non-finite Jacobian: no mode here
                    old = math.nan
                    break
                if 2.0 * float(grad @ gn) <= PREDICTED_TOL * (1.0 + old):
                    done = True  # Gauss-Newton predicts less decrease than rounding would let a step show
                    break
                try:
                    np.linalg.cholesky(H)  # Newton only where H is positive definite
                    delta = np.linalg.solve(H, grad)
                except np.linalg.LinAlgError:
                    delta = gn
                if not np.all(np.isfinite(delta)):
                    delta = gn
                size, new = halving_step(pwrss, u, delta, old)
                it += 1
                if not new <= old:  # no step lowers it: as converged as it gets
                    done = True
                    break
                u, old = u + size * delta, new
                system = self._system(base, ZL, u)
            jet, J, r, A, H = system
        self.n_pnls += 1
        if np.all(np.isfinite(u)):
            self.u_start = u
        try:
            R = np.linalg.cholesky(A)
            logdet = 2.0 * float(np.sum(np.log(np.diag(R))))
        except np.linalg.LinAlgError:
            R, logdet = np.full_like(A, np.nan), math.nan
        return {
            "u": u,
            "pwrss": float(r @ r + u @ u),
            "logdet": logdet,
            "iterations": it,
            "converged": bool(done and it < MAX_ITER),
            "mu": jet.value,
            "R": R,
            "system": (base, ZL, jet, J, r, A, H),
        }

    def laplace(self, beta: np.ndarray, theta: np.ndarray) -> float:
        """-2 x the Laplace log-likelihood with sigma profiled out."""
        m = self.modes(beta, theta)
        n = self.problem.n
        if not (m["pwrss"] > 0 and math.isfinite(m["logdet"])):
            return math.inf
        return m["logdet"] + n * (1.0 + math.log(2 * math.pi * m["pwrss"] / n))

    # ---- value and gradient --------------------------------------------------
    def laplace_and_gradient(self, x: np.ndarray) -> tuple[float, np.ndarray, bool]:
        """The deviance at ``x = (beta, theta)`` and its exact gradient (module docstring)."""
        pr = self.problem
        p, n = pr.p, pr.n
        x = np.asarray(x, float)
        m = self.modes(x[:p], x[p:])
        if not (m["pwrss"] > 0 and math.isfinite(m["logdet"])):
            return math.inf, np.full(x.size, np.nan), False
        with np.errstate(all="ignore"):
            try:
                grad = self._gradient(x, m)
            except np.linalg.LinAlgError:
                grad = np.full(x.size, np.nan)
        value = m["logdet"] + n * (1.0 + math.log(2 * math.pi * m["pwrss"] / n))
        return value, grad, m["converged"]

    def _gradient(self, x: np.ndarray, m: dict[str, Any]) -> np.ndarray:
        """The total derivative of the module docstring, term by term."""
        pr = self.problem
        p, n = pr.p, pr.n
        u = m["u"]
        _, ZL, jet, J, r, A, H = m["system"]
        f, h = jet.grad, jet.hess
        pw = m["pwrss"]
        nK, q = f.size, pr.q
        P = np.linalg.solve(A, J.T).T  # J A^-1
        w = (ZL @ P[:, :, None])[:, :, 0]  # (n, K)
        s = (w[:, None, :] @ h)[:, 0, :]  # (n, K): s_m = sum_k f_km w_k
        M = r[:, None, None] * h - f[:, :, None] * f[:, None, :]
        G = (M @ ZL).reshape(nK, q)  # G_m = sum_k (r f_km - f_k f_m) ZL_k, rows first
        rf = r[:, None] * f  # (n, K): f_k r
        Xf = self.Xt.reshape(nK, p)
        dD_du = 2.0 * ZL.reshape(nK, q).T @ s.ravel() - (2.0 * n / pw) * (J.T @ r - u)
        out = np.empty(x.size)
        dg_dx = np.empty((q, x.size))
        dg_dx[:, :p] = G.T @ Xf
        out[:p] = Xf.T @ (2.0 * s - (2.0 * n / pw) * rf).ravel()
        for ell, (rows, cols, Zr) in enumerate(self._theta_places):
            v = np.zeros(q)
            np.add.at(v, rows, u[cols])
            d = self.Zt @ v  # (n, K): Z_m Lambda_l u
            dL = 2.0 * float(np.sum(s * d)) + 2.0 * float(np.einsum("nk,nkj,nj->", f, Zr, P[:, cols]))
            dpw = -2.0 * float(np.sum(rf * d))
            dg = np.zeros(q)
            np.add.at(dg, cols, np.einsum("nkj,nk->j", Zr, rf))
            dg += G.T @ d.ravel()
            out[p + ell] = dL + (n / pw) * dpw
            dg_dx[:, p + ell] = dg
        du_dx = np.linalg.solve(H, dg_dx)  # the implicit derivative of the modes
        out += dD_du @ du_dx
        self._tangent = (x.copy(), u.copy(), du_dx)  # the next call starts its modes on it
        return out
