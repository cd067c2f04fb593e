"""The objective of a nonlinear mixed model: conditional modes by penalized nonlinear
least squares and the Laplace (or adaptive quadrature) deviance, in JAX.

With ``b = Lambda(theta) u`` and ``u ~ N(0, sigma^2 I)`` (lme4's spherical random
effects), the conditional modes minimize the penalized residual sum of squares
``||y - f(beta, u)||^2 + ||u||^2`` (PNLS), found by Gauss-Newton with step halving;
``J`` is the Jacobian of the mean with respect to ``u`` (from JAX). The modes do not
depend on sigma, so the Laplace deviance profiles sigma out exactly:

    -2 log L = log|J'J + I| + n (1 + log(2 pi pwrss / n)),   sigma^2 = pwrss / n,

which is lme4's ``nlmer`` criterion. For one grouping factor the integral factors
over its levels, and adaptive Gauss-Hermite quadrature (``nagq`` nodes per
dimension, centred at the modes, scaled by the factor of ``J'J + I``) gives the
marginal likelihood as precisely as asked; sigma is then a parameter.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from ..formula.expression import evaluate
from ..model.nonlinear import NlmmProblem

MAX_ITER = 300
MAX_HALVINGS = 20
TOL = 1e-11


def _enable_x64() -> None:
    from ..linalg.jax_setup import enable_x64_and_cache

    enable_x64_and_cache()


@dataclass(frozen=True)
class Kernels:
    """The traced pieces of one model structure (mean tree, parameter and covariate
    names); every array comes in as an argument, so one compilation serves every fit
    of that structure."""

    tree: Any
    params: tuple[str, ...]

    def lam(self, data: dict[str, Any], theta: Any) -> Any:
        import jax.numpy as jnp

        q = data["Z"].shape[2]
        return jnp.zeros((q, q)).at[data["lam_r"], data["lam_c"]].set(theta[data["lam_i"]])

    def mean(self, data: dict[str, Any], phi: Any) -> Any:
        import jax.numpy as jnp

        env = dict(data["cov"])
        env.update({k: phi[..., j] for j, k in enumerate(self.params)})
        return jnp.broadcast_to(evaluate(self.tree, env, jnp), phi.shape[:-1])

    def mean_and_jac(self, data: dict[str, Any], base: Any, ZL: Any, u: Any) -> tuple[Any, Any]:
        """The mean at ``u`` and its Jacobian (n, q) with respect to ``u``."""
        import jax
        import jax.numpy as jnp

        phi = base + jnp.einsum("knq,q->nk", ZL, u)

        def f(ph: Any) -> Any:
            return self.mean(data, ph)

        mu = f(phi)
        grads = [jax.jvp(f, (phi,), (jnp.zeros_like(phi).at[:, k].set(1.0),))[1] for k in range(phi.shape[1])]
        J = sum(g[:, None] * ZL[k] for k, g in enumerate(grads))
        return mu, J

    def curvature(self, data: dict[str, Any], base: Any, ZL: Any, u: Any, r: Any) -> Any:
        """``sum_i r_i d2 f_i / du du'`` (q, q): the part of the Hessian of the residual sum
        of squares that Gauss-Newton leaves out. The mean is rowwise in the parameters,
        so this is ``ZL' diag-blocks(r_i H_i) ZL`` with ``H_i`` the (K, K) Hessian of row i."""
        import jax
        import jax.numpy as jnp

        phi = base + jnp.einsum("knq,q->nk", ZL, u)
        K = phi.shape[1]
        units = [jnp.zeros_like(phi).at[:, k].set(1.0) for k in range(K)]

        def d1(ph: Any, k: int) -> Any:
            return jax.jvp(lambda p: self.mean(data, p), (ph,), (units[k],))[1]

        out = jnp.zeros((u.shape[0], u.shape[0]))
        for k in range(K):
            for m in range(k, K):
                h = jax.jvp(lambda p, k=k: d1(p, k), (phi,), (units[m],))[1] * r
                term = (ZL[k] * h[:, None]).T @ ZL[m]
                out = out + (term if m == k else term + term.T)
        return out

    def pnls(self, data: dict[str, Any], beta: Any, theta: Any, u0: Any) -> tuple[Any, ...]:
        import jax
        import jax.numpy as jnp

        y = data["y"]
        base = jnp.einsum("knp,p->nk", data["X"], beta)
        ZL = jnp.einsum("knq,qr->knr", data["Z"], self.lam(data, theta))
        eye = jnp.eye(u0.shape[0])

        def pwrss(u: Any) -> Any:
            mu = self.mean(data, base + jnp.einsum("knq,q->nk", ZL, u))
            return jnp.sum((y - mu) ** 2) + jnp.sum(u**2)

        def step(state: tuple[Any, ...]) -> tuple[Any, ...]:
            u, old, it, _ = state
            mu, J = self.mean_and_jac(data, base, ZL, u)
            grad = J.T @ (y - mu) - u
            A = J.T @ J + eye
            # Newton where the full Hessian is positive definite, else Gauss-Newton
            chol = jnp.linalg.cholesky(A - self.curvature(data, base, ZL, u, y - mu))
            newton = jax.scipy.linalg.cho_solve((chol, True), grad)
            delta = jnp.where(jnp.all(jnp.isfinite(newton)), newton, jnp.linalg.solve(A, grad))

            def halve(s: tuple[Any, ...]) -> tuple[Any, ...]:
                return s[0] * 0.5, pwrss(u + 0.5 * s[0] * delta), s[2] + 1

            def worse(s: tuple[Any, ...]) -> Any:
                return (s[1] > old) & (s[2] < MAX_HALVINGS)

            size, new, _ = jax.lax.while_loop(worse, halve, (1.0, pwrss(u + delta), 0))
            accept = new <= old
            u_next = jnp.where(accept, u + size * delta, u)
            new = jnp.where(accept, new, old)
            small = jnp.max(jnp.abs(size * delta)) < 1e-9 * (1 + jnp.max(jnp.abs(u)))
            done = (old - new <= TOL * (1.0 + new)) & small
            return u_next, new, it + 1, done | ~accept

        def going(state: tuple[Any, ...]) -> Any:
            return (~state[3]) & (state[2] < MAX_ITER)

        u, pw, it, done = jax.lax.while_loop(going, step, (u0, pwrss(u0), 0, False))
        mu, J = self.mean_and_jac(data, base, ZL, u)
        R = jnp.linalg.cholesky(J.T @ J + eye)
        logdet = 2.0 * jnp.sum(jnp.log(jnp.diag(R)))
        return u, pw, logdet, it, done, mu, R

    def deviance_at(self, data: dict[str, Any], beta: Any, theta: Any, u: Any) -> Any:
        """The Laplace deviance (sigma profiled) at given modes ``u``."""
        import jax.numpy as jnp

        y = data["y"]
        base = jnp.einsum("knp,p->nk", data["X"], beta)
        ZL = jnp.einsum("knq,qr->knr", data["Z"], self.lam(data, theta))
        mu, J = self.mean_and_jac(data, base, ZL, u)
        pw = jnp.sum((y - mu) ** 2) + jnp.sum(u**2)
        R = jnp.linalg.cholesky(J.T @ J + jnp.eye(u.shape[0]))
        n = y.shape[0]
        return 2.0 * jnp.sum(jnp.log(jnp.diag(R))) + n * (1.0 + jnp.log(2 * math.pi * pw / n))

    def laplace_grad(self, data: dict[str, Any], x: Any, u0: Any) -> tuple[Any, ...]:
        """The Laplace deviance at ``x = (beta, theta)``, its exact gradient, the modes and
        PNLS's convergence flag.

        Why the gradient is exact: the modes ``u*(x)`` solve ``g(u, x) = 0`` (``g`` the
        gradient of the penalized residual sum of squares). One Newton step from the
        converged modes, held fixed, ``u1(x) = u* - H^-1 g(u*, x)`` with ``H`` the exact
        Hessian, equals ``u*`` in value and, because ``g(u*, x) = 0``, has the derivative
        ``-H^-1 dg/dx`` of the implicit function theorem; so differentiating the
        deviance at ``u1(x)`` gives the total derivative."""
        import jax
        import jax.numpy as jnp

        p = data["X"].shape[2]
        y = data["y"]
        x0 = jax.lax.stop_gradient(x)
        u_star, _, _, _, done, _, _ = self.pnls(data, x0[:p], x0[p:], u0)
        u_star = jax.lax.stop_gradient(u_star)

        def dev(x: Any) -> Any:
            beta, theta = x[:p], x[p:]
            base = jnp.einsum("knp,p->nk", data["X"], beta)
            ZL = jnp.einsum("knq,qr->knr", data["Z"], self.lam(data, theta))
            mu, J = self.mean_and_jac(data, base, ZL, u_star)
            r = y - mu
            H = J.T @ J + jnp.eye(u_star.shape[0]) - self.curvature(data, base, ZL, u_star, r)
            u1 = u_star + jnp.linalg.solve(H, J.T @ r - u_star)
            return self.deviance_at(data, beta, theta, u1)

        value, grad = jax.value_and_grad(dev)(x)
        return value, grad, u_star, done


@lru_cache(maxsize=64)
def kernels(tree: Any, params: tuple[str, ...]) -> tuple[Kernels, Any]:
    """The kernels of a model structure and their jitted PNLS (cached per structure)."""
    import jax

    k = Kernels(tree, params)
    return k, jax.jit(k.pnls)


@lru_cache(maxsize=64)
def _grad_kernel(tree: Any, params: tuple[str, ...]) -> Any:
    import jax

    k, _ = kernels(tree, params)
    return jax.jit(k.laplace_grad)


class NlmmObjective:
    """PNLS and deviances of one problem. ``u_start`` keeps the last modes as the next
    start (as lme4 does); :meth:`reset` forgets them."""

    def __init__(self, problem: NlmmProblem) -> None:
        _enable_x64()
        import jax.numpy as jnp

        self.problem = problem
        r, c, i = problem.lambda_index()
        self.data = {
            "X": jnp.asarray(problem.X),
            "Z": jnp.asarray(problem.Z),
            "y": jnp.asarray(problem.y),
            "cov": {k: jnp.asarray(v) for k, v in problem.covariates.items()},
            "lam_r": jnp.asarray(r),
            "lam_c": jnp.asarray(c),
            "lam_i": jnp.asarray(i),
        }
        self.kernels, self._pnls_jit = kernels(problem.mean.tree, problem.param_names)
        self.u_start = np.zeros(problem.q)
        self.agq_extra: dict[int, dict[str, Any]] = {}
        self._grad_jit: Any = None

    def _pnls(self, beta: np.ndarray, theta: np.ndarray, u0: np.ndarray) -> tuple[Any, ...]:
        return self._pnls_jit(self.data, beta, theta, u0)

    # ---- public -------------------------------------------------------------
    def reset(self) -> None:
        self.u_start = np.zeros(self.problem.q)

    def modes(self, beta: np.ndarray, theta: np.ndarray) -> dict[str, Any]:
        """The PNLS solution: spherical modes u, pwrss, log|J'J+I|, iterations, convergence."""
        u, pw, logdet, it, done, mu, R = self._pnls(
            np.asarray(beta, float), np.asarray(theta, float), self.u_start
        )
        u = np.asarray(u)
        if np.all(np.isfinite(u)):
            self.u_start = u
        return {
            "u": u,
            "pwrss": float(pw),
            "logdet": float(logdet),
            "iterations": int(it),
            "converged": bool(done),
            "mu": np.asarray(mu),
            "R": np.asarray(R),
        }

    def laplace_and_gradient(self, x: np.ndarray) -> tuple[float, np.ndarray, bool]:
        """Laplace deviance at ``x = (beta, theta)`` and its exact gradient
        (:meth:`Kernels.laplace_grad`); the modes become the next start."""
        import jax

        if self._grad_jit is None:
            self._grad_jit = _grad_kernel(self.problem.mean.tree, self.problem.param_names)
        value, grad, u, done = jax.device_get(self._grad_jit(self.data, np.asarray(x, float), self.u_start))
        if np.all(np.isfinite(u)):
            self.u_start = u
        return float(value), np.asarray(grad), bool(done)

    def laplace(self, beta: np.ndarray, theta: np.ndarray) -> float:
        """-2 x the Laplace log-likelihood with sigma profiled out."""
        m = self.modes(beta, theta)
        n = self.problem.n
        if not (m["pwrss"] > 0 and math.isfinite(m["logdet"])):
            return math.inf
        return m["logdet"] + n * (1.0 + math.log(2 * math.pi * m["pwrss"] / n))

    def laplace_sigma(self, beta: np.ndarray, theta: np.ndarray, sigma: float) -> float:
        """-2 x the Laplace log-likelihood at a given residual SD."""
        m = self.modes(beta, theta)
        n = self.problem.n
        return m["logdet"] + n * math.log(2 * math.pi * sigma**2) + m["pwrss"] / sigma**2

    def agq(self, beta: np.ndarray, theta: np.ndarray, sigma: float, nagq: int) -> float:
        """-2 x the marginal log-likelihood by adaptive Gauss-Hermite quadrature."""
        from .quadrature import agq_function

        m = self.modes(beta, theta)
        fn, extra = agq_function(self, nagq)
        val = float(
            fn(self.data, extra, np.asarray(beta, float), np.asarray(theta, float), sigma, m["u"], m["R"])
        )
        return val if math.isfinite(val) else math.inf
