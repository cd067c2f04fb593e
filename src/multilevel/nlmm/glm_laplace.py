"""Binomial and Poisson nonlinear mixed models: the Laplace deviance, in NumPy.

The expression is the linear predictor ``eta`` (brms' nonlinear formulas on the link
scale), ``mu = g^-1(eta)``; with ``b = Lambda u``, ``u ~ N(0, I)``, the conditional
modes minimize ``pen(u) = -2 sum log p(y | mu(u)) + ||u||^2``, found by Newton's
method on the full Hessian ``H`` of ``pen / 2`` (Fisher-like ``J'WJ + I`` where that
is not positive definite), with step halving:

    H = J' diag(c) J + I - sum_km ZL_k' diag(a f_km) ZL_m,

``J = d eta / du``, ``a`` the score and ``c`` the observed weights of the family in
eta (:func:`multilevel.family.derivatives.eta_derivatives`), ``f_km`` the mean's
second derivatives in the parameters. The Laplace deviance is ``pen(u*) + log|H|``,
``-2 log`` of ``exp(-pen/2) |H|^(-1/2)``: for a predictor linear in the random effects
and a canonical link it is lme4's ``glmer`` deviance (``nAGQ = 1``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..family.derivatives import eta_derivatives
from ..model.nonlinear import NlmmProblem
from .jets import mean_jet
from .numpy_laplace import MAX_ITER, PREDICTED_TOL, NumpyLaplace, curvature, halving_step, jacobian


class NumpyGlmLaplace(NumpyLaplace):
    """PNLS's counterpart for a binomial or Poisson response; the last modes start the next."""

    def __init__(self, problem: NlmmProblem) -> None:
        super().__init__(problem)
        self.family = problem.family
        self.w = problem.weights if problem.weights is not None else np.ones(problem.n)

    def _pen(self, eta: np.ndarray, u: np.ndarray) -> float:
        mu = self.family.link.inverse(eta)
        return float(-2.0 * np.sum(self.family.logpdf(self.y, mu, self.w, 1.0)) + u @ u)

    def _glm_system(self, base: np.ndarray, ZL: np.ndarray, u: np.ndarray) -> tuple[Any, ...]:
        jet = mean_jet(self.tree, self.params, self._phi(base, ZL, u), self.cov, self._seeds, self.steps)
        eta = jet.value
        d = eta_derivatives(self.family, self.y, eta, self.family.link.inverse(eta), self.w, 1.0)
        J = jacobian(jet.grad, ZL)
        A = J.T @ (d.hessian[:, None] * J)
        A[np.diag_indices_from(A)] += 1.0
        return jet, J, d, A, A - curvature(d.score[:, None, None] * jet.hess, ZL)

    def modes(self, beta: np.ndarray, theta: np.ndarray) -> dict[str, Any]:
        """Newton for the modes from the last ones: u, pen, log|H|, iterations, convergence."""
        base, ZL = self._base(beta), self._zl(theta)

        def pen(v: np.ndarray) -> float:
            return self._pen(self._mean(self._phi(base, ZL, v)), v)

        u = self.u_start.copy()
        old = pen(u)
        done, it = False, 0
        with np.errstate(all="ignore"):
            jet, J, d, A, H = self._glm_system(base, ZL, u)
            while it < MAX_ITER and math.isfinite(old):
                grad = J.T @ d.score - u
                try:
                    gn = np.linalg.solve(A, grad)
                except np.linalg.LinAlgError:
                    gn = grad
                if 2.0 * abs(float(grad @ gn)) <= PREDICTED_TOL * (1.0 + abs(old)):
                    done = True
                    break
                try:
                    np.linalg.cholesky(H)
                    delta = np.linalg.solve(H, grad)
                except np.linalg.LinAlgError:
                    delta = gn
                size, new = halving_step(pen, u, delta, old)
                it += 1
                if not new <= old:
                    done = True
                    break
                u, old = u + size * delta, new
                jet, J, d, A, H = self._glm_system(base, ZL, u)
        if np.all(np.isfinite(u)):
            self.u_start = u
        try:
            logdet = 2.0 * float(np.sum(np.log(np.diag(np.linalg.cholesky(H)))))
        except np.linalg.LinAlgError:
            logdet = math.nan
        return {
            "u": u,
            "pwrss": old,  # the penalized deviance at the modes
            "logdet": logdet,
            "iterations": it,
            "converged": bool(done and it < MAX_ITER),
            "mu": self.family.link.inverse(jet.value),
            "eta": jet.value,
            "H": H,
            "ZL": ZL,
            "base": base,
        }

    def laplace(self, beta: np.ndarray, theta: np.ndarray) -> float:
        """-2 x the Laplace log-likelihood."""
        m = self.modes(beta, theta)
        if not (math.isfinite(m["pwrss"]) and math.isfinite(m["logdet"])):
            return math.inf
        return m["pwrss"] + m["logdet"]

    def agq(self, beta: np.ndarray, theta: np.ndarray, nagq: int) -> float:
        """-2 x the marginal log-likelihood by adaptive Gauss-Hermite quadrature (one
        grouping factor): per level, ``u = u* + L^-T x`` with ``L L'`` that level's block
        of ``H`` and ``x`` on the standard-normal grid of
        :func:`multilevel.linalg.quadrature.hermite_grid`, so that

            log L_l = -log|L_l| + logsumexp_k (log w_k + l_l(u_k) - |u_k|^2 / 2 + |x_k|^2 / 2),

        the Laplace approximation at one node."""
        from scipy.special import logsumexp

        from ..linalg.quadrature import hermite_grid
        from .quadrature import level_index

        m = self.modes(beta, theta)
        if not (math.isfinite(m["pwrss"]) and math.isfinite(m["logdet"])):
            return math.inf
        idx, row_level = level_index(self.problem)
        n_levels, q = idx.shape
        nodes, logw = hermite_grid(nagq, q)
        u_star, H = m["u"], m["H"]
        total = 0.0
        shifts = np.zeros((nodes.shape[0], u_star.size))
        with np.errstate(all="ignore"):
            for lev in range(n_levels):
                sl = idx[lev]
                try:
                    L = np.linalg.cholesky(H[np.ix_(sl, sl)])
                except np.linalg.LinAlgError:
                    return math.inf
                shifts[:, sl] = np.linalg.solve(L.T, nodes.T).T
                total -= float(np.sum(np.log(np.diag(L))))
            ll = np.empty((nodes.shape[0], n_levels))
            for k in range(nodes.shape[0]):
                u = u_star + shifts[k]
                eta = self._mean(self._phi(m["base"], m["ZL"], u))
                lp = self.family.logpdf(self.y, self.family.link.inverse(eta), self.w, 1.0)
                ll[k] = np.bincount(row_level, lp, n_levels) - 0.5 * np.sum(u[idx] ** 2, axis=1)
            terms = logw[:, None] + ll + 0.5 * np.sum(nodes**2, axis=1)[:, None]
            total += float(np.sum(logsumexp(terms, axis=0)))
        return -2.0 * total if math.isfinite(total) else math.inf

    def laplace_and_gradient(self, x: np.ndarray) -> tuple[float, np.ndarray, bool]:
        raise NotImplementedError("binomial and Poisson nonlinear fits are derivative-free (BOBYQA)")

    def population(self, beta0: np.ndarray) -> np.ndarray:
        """The fixed effects with the random effects at zero: maximum likelihood of the
        population model (the start of the mixed fit)."""
        from scipy.optimize import minimize

        zero = np.zeros(self.problem.q)

        def f(beta: np.ndarray) -> tuple[float, np.ndarray]:
            base = self._base(beta)
            jet = mean_jet(self.tree, self.params, base, self.cov, self._seeds, self.steps)
            eta = jet.value
            with np.errstate(all="ignore"):
                value = self._pen(eta, zero)
                d = eta_derivatives(self.family, self.y, eta, self.family.link.inverse(eta), self.w, 1.0)
            if not math.isfinite(value):
                return math.inf, np.zeros_like(beta)
            g = -2.0 * np.einsum("kn,knp->p", (d.score[:, None] * jet.grad).T, self.X)
            return value, g

        res = minimize(f, beta0, jac=True, method="BFGS", options={"gtol": 1e-8, "maxiter": 500})
        return np.asarray(res.x) if math.isfinite(res.fun) and res.fun <= f(beta0)[0] else beta0
