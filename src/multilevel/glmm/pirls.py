"""Penalized iteratively reweighted least squares on the blocked Cholesky.

At given theta (and beta, unless it is estimated inside PIRLS as lme4's
``nAGQ = 0`` first stage), the conditional mode ``u`` of the spherical random
effects maximizes ``sum log p(y | u) - |u|^2 / 2``. Each IRLS step is a weighted
linear mixed-model solve: the cross-products of ``[Z X z]`` with the working
weights (:class:`~multilevel.crossprod.CrossProductBuilder`) and the same
blocked factor and solver as the LMM. Steps are halved when the penalized
deviance does not decrease.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from ..crossprod import CrossProductBuilder
from ..design import Design, z_times_b
from ..errors import ConvergenceWarning
from ..lmm.objective import Factor, LmmObjective
from ..lmm.solution import solve
from ..spec import ModelSpec
from .families import Family


@dataclass(frozen=True)
class PirlsResult:
    u: list[np.ndarray]  # per block (n_levels, q)
    beta: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    weights: np.ndarray  # working weights at the mode
    factor: Factor
    objective: LmmObjective
    loglik_cond: float  # sum log p(y | u)
    sqr_u: float
    iterations: int
    converged: bool

    @property
    def laplace_deviance(self) -> float:
        """-2 x Laplace log-likelihood: -2 sum log p(y|u) + |u|^2 + log|L|^2."""
        return -2.0 * self.loglik_cond + self.sqr_u + self.factor.logdet_z


class GlmmProblem:
    """Data, family and cached structures of a GLMM; evaluates PIRLS and the Laplace deviance."""

    def __init__(self, spec: ModelSpec, design: Design, family: Family) -> None:
        self.spec = spec
        self.design = design
        self.family = family
        self.y = design.y
        self.n = design.n
        self.w0 = design.weights if design.weights is not None else np.ones(self.n)
        self.offset = design.offset if design.offset is not None else np.zeros(self.n)
        self.X = design.X
        self.groups = [(g.codes, g.values) for g in design.groups]
        nl = [g.n_levels for g in spec.groupings]
        self.builder_u = CrossProductBuilder(self.groups, nl, np.zeros((self.n, 0)))
        self.builder_ub = CrossProductBuilder(self.groups, nl, self.X)
        family.check(self.y, self.w0)
        self.mustart = family.mustart(self.y, self.w0)
        self._log_const = float(np.sum(family.logpdf_constant(self.y, self.w0)))
        self._u_warm: list[np.ndarray] | None = None

    # ---- helpers -----------------------------------------------------
    def zb(self, u: list[np.ndarray], Ts: list[np.ndarray]) -> np.ndarray:
        """``Z Lambda u`` on the model's rows."""
        return z_times_b(self.design, [uk @ T.T for uk, T in zip(u, Ts)])

    def cond_loglik(self, mu: np.ndarray, disp: float) -> float:
        """sum log p(y | mu) (the mu-free part cached)."""
        return float(np.sum(self.family.logpdf_kernel(self.y, mu, self.w0, disp))) + self._log_const

    def _zeros_u(self) -> list[np.ndarray]:
        return [np.zeros((g.n_levels, g.q)) for g in self.spec.groupings]

    # ---- PIRLS -------------------------------------------------------
    def pirls(
        self,
        theta: np.ndarray,
        beta: np.ndarray | None,
        disp: float = 1.0,
        u0: list[np.ndarray] | None = None,
        beta0: np.ndarray | None = None,
        tol: float = 1e-10,
        maxit: int = 60,
    ) -> PirlsResult:
        """Conditional modes at theta; ``beta=None`` estimates beta inside PIRLS."""
        fam, link = self.family, self.family.link
        Ts = self.spec.templates(theta)
        joint = beta is None
        builder = self.builder_ub if joint else self.builder_u
        fixed_beta = np.zeros(self.X.shape[1]) if beta is None else np.asarray(beta, dtype=float)
        if u0 is None and beta0 is None and joint:
            eta = link.link(self.mustart)
            u = self._zeros_u()
            b_cur = np.zeros(self.X.shape[1])
            fresh = True
        else:
            u = u0 if u0 is not None else self._zeros_u()
            b_cur = fixed_beta if not joint else (beta0 if beta0 is not None else np.zeros(self.X.shape[1]))
            eta = self.offset + self.X @ b_cur + self.zb(u, Ts)
            fresh = False
        mu = link.inverse(eta)
        pdev = -2 * self.cond_loglik(mu, disp) + sum(float(np.sum(x * x)) for x in u)
        converged = False
        it = 0
        while it < maxit:
            it += 1
            mu_eta = link.mu_eta(eta)
            W = self.w0 * mu_eta**2 / fam.variance(mu, disp)
            z = eta - self.offset + (self.y - mu) / mu_eta
            if not joint:
                z = z - self.X @ fixed_beta
            cp = builder.compute(z, W)
            obj = LmmObjective(self.spec, cp, reml=False)
            f = obj.factor(theta)
            sol = solve(obj, f)
            u_new, beta_new = sol.u, (sol.beta if joint else fixed_beta)
            step = 1.0
            while True:
                u_try = [a + step * (b - a) for a, b in zip(u, u_new)] if not fresh else u_new
                b_try = b_cur + step * (beta_new - b_cur) if (joint and not fresh) else beta_new
                eta_try = self.offset + self.X @ b_try + self.zb(u_try, Ts)
                mu_try = link.inverse(eta_try)
                ok = fam.valid_mu(mu_try)
                pdev_try = (
                    -2 * self.cond_loglik(mu_try, disp) + sum(float(np.sum(x * x)) for x in u_try)
                    if ok
                    else math.inf
                )
                if fresh or (math.isfinite(pdev_try) and pdev_try <= pdev + 1e-10 * abs(pdev)) or step < 1e-4:
                    break
                step /= 2
            fresh = False
            delta = abs(pdev - pdev_try)
            u, b_cur, eta, mu, pdev = u_try, b_try, eta_try, mu_try, pdev_try
            if not math.isfinite(pdev):
                break
            if delta < tol * (abs(pdev) + 0.1):
                converged = True
                break
        # factor with the working weights at the mode (for log|L|)
        mu_eta = link.mu_eta(eta)
        W = self.w0 * mu_eta**2 / fam.variance(mu, disp)
        z = eta - self.offset + (self.y - mu) / mu_eta - (0 if joint else self.X @ fixed_beta)
        cp = builder.compute(z, W)
        result_obj = LmmObjective(self.spec, cp, reml=False)
        result_f = result_obj.factor(theta)
        if not converged:
            warnings.warn(
                f"PIRLS did not converge in {maxit} iterations at theta={np.round(theta, 4)}; "
                "the likelihood at this point is approximate",
                ConvergenceWarning,
                stacklevel=3,
            )
        return PirlsResult(
            u=u,
            beta=b_cur,
            eta=eta,
            mu=mu,
            weights=W,
            factor=result_f,
            objective=result_obj,
            loglik_cond=self.cond_loglik(mu, disp),
            sqr_u=sum(float(np.sum(x * x)) for x in u),
            iterations=it,
            converged=converged,
        )
