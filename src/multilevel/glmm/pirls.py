"""Penalized iteratively reweighted least squares on the blocked Cholesky.

At given theta (and beta, unless it is estimated inside PIRLS as lme4's
``nAGQ = 0`` first stage), the conditional mode ``u`` of the spherical random
effects maximizes ``sum log p(y | u) - |u|^2 / 2``. Each IRLS step is a weighted
linear mixed-model solve: the cross-products of ``[Z X z]`` with the working
weights (:class:`~multilevel.linalg.crossprod.CrossProductBuilder`) and the
blocked factor and solver of :mod:`multilevel.linalg.numpy_backend`, the same as the
LMM's. Steps are halved when the penalized deviance does not decrease.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..errors import ConvergenceWarning, ModelError, warn
from ..family import Dispersion, Family
from ..family.derivatives import eta_derivatives, observed_weights
from ..linalg import numpy_backend as la
from ..linalg.blocked import PairSchur, PairStructure
from ..linalg.crossprod import CrossProductBuilder, CrossProducts
from ..linalg.factor import Factor
from ..model.design import Design
from ..model.spec import ModelSpec

#: the Laplace approximations: the log-determinant from the observed Hessian of the
#: joint log density (glmmTMB's; the default) or from the expected (Fisher) weights (lme4's)
LAPLACE_METHODS = ("observed", "expected")


@dataclass(frozen=True)
class ObservedCurvature:
    """``M_H = Lambda'Z'H Z Lambda + I`` at the mode, ``H = -d^2 log p(y | eta) / d eta^2``
    the observed weights: minus the Hessian of the penalized log-likelihood in u."""

    weights: np.ndarray  # H
    system: la.NumpySystem  # the cross-products of Z with weights H
    factor: Factor | None  # None where M_H is not positive definite


@dataclass(frozen=True)
class PirlsResult:
    u: list[np.ndarray]  # per block (n_levels, q)
    beta: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    weights: np.ndarray  # working weights at the mode
    factor: Factor
    system: la.NumpySystem  # the working cross-products the factor was taken of
    loglik_cond: float  # sum log p(y | u)
    sqr_u: float
    iterations: int
    converged: bool
    # the observed-information curvature (observed Laplace, non-canonical links), else None
    observed: ObservedCurvature | None = None
    # lme4's aic term (GlmmProblem.lme4_criterion), which replaces -2 sum log p(y|u)
    lme4_aic: float | None = None

    @property
    def curvature(self) -> tuple[la.NumpySystem, Factor] | None:
        """The system and factor of the Laplace approximation's curvature in u (the
        observed or the expected information); None where the observed one is not
        positive definite."""
        if self.observed is None:
            return self.system, self.factor
        if self.observed.factor is None:
            return None
        return self.observed.system, self.observed.factor

    @property
    def laplace_deviance(self) -> float:
        """-2 x Laplace log-likelihood: -2 sum log p(y|u) + |u|^2 + log|L|^2, ``L`` the
        factor of the curvature (infinite where the observed one is not positive definite).
        Under lme4's criterion (``lme4_aic`` set): ``log|L|^2 + |u|^2 + lme4_aic``, which is
        lme4's ``glmResp::Laplace`` (see :attr:`GlmmProblem.lme4_criterion`)."""
        c = self.curvature
        logdet = c[1].logdet_z if c is not None else math.inf
        if self.lme4_aic is not None:
            return logdet + self.sqr_u + self.lme4_aic
        return -2.0 * self.loglik_cond + self.sqr_u + logdet


#: most Newton steps after PIRLS (observed Laplace), and the change in u that ends them
NEWTON_STEPS = 4
NEWTON_STEP_TOL = 1e-10

#: use the pairwise Schur update when it has this many times fewer terms than the
#: dense product (a pair costs a gather and a bincount, a dense term a BLAS flop)
PAIR_ADVANTAGE = 40


def _pair_structure(builder: CrossProductBuilder) -> PairStructure | None:
    """The fixed pairwise structure of the Schur update, where it pays (see
    :class:`~multilevel.linalg.blocked.PairStructure`), else None."""
    lay = builder.layout
    if not builder.dense or lay.q1 != 1:
        return None
    n1, m, mz = lay.n1, lay.m, lay.mz
    rows = np.concatenate([np.repeat(builder.codes1, builder.zc.shape[1]), np.repeat(np.arange(n1), m - mz)])
    cols = np.concatenate([builder.zc.ravel(), np.tile(np.arange(mz, m), n1)])
    pat = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n1, m))
    pat.sum_duplicates()
    nnz = np.diff(pat.indptr)
    if PAIR_ADVANTAGE * float(np.sum(nnz * (nnz + 1) / 2)) >= n1 * m * m:
        return None
    return PairStructure.build(pat, m)


class GlmmProblem:
    """Data, family and cached structures of a GLMM; evaluates PIRLS and the Laplace deviance.

    ``lme4_criterion`` (``laplace="expected"`` with a scale dispersion: Gamma, inverse
    Gaussian, Gaussian with a non-identity link; ``nagq`` 0 or 1): the deviance is the criterion lme4's
    ``glmer`` optimizes and reports (``logLik = -criterion / 2``), not a Laplace
    approximation with the dispersion as a parameter. lme4's PIRLS minimizes
    ``sum of deviance residuals + |u|^2`` and weights ``w mu_eta^2 / V(mu)``, both at
    phi = 1; its criterion (``glmResp::Laplace``) is ``log|L|^2 + |u|^2 + aic``, ``L``
    the factor of ``Lambda'Z'WZ Lambda + I`` with those weights and ``aic`` the
    family's R ``aic`` at the modes' means, which puts ``phi = deviance / sum(w)`` into
    the log density and adds 2 (:meth:`~multilevel.family.base.Family.lme4_aic`). The
    dispersion is no parameter of it; lme4 reports ``sigma^2`` = (Pearson sum + |u|^2) / n
    (:meth:`lme4_dispersion`). With ``nagq > 1`` ``"expected"`` only scales the
    quadrature of the likelihood (the dispersion a parameter), as for other families.
    """

    def __init__(
        self,
        spec: ModelSpec,
        design: Design,
        family: Family,
        *,
        compiled: bool = True,
        laplace: str = "observed",
        nagq: int = 1,
    ) -> None:
        # ``compiled``: the row passes run through the Numba kernels (multilevel.linalg.kernels):
        # ~1.3x faster iterations, ~0.5 s once per process to start Numba.
        # ``laplace``: one of LAPLACE_METHODS; ``nagq``: the fit's quadrature nodes
        # (lme4's criterion is the Laplace one's, nagq <= 1)
        if laplace not in LAPLACE_METHODS:
            raise ModelError(f"laplace must be one of {LAPLACE_METHODS}, got {laplace!r}")
        self.laplace = laplace
        # for a canonical link the two informations agree: the expected one is computed
        self.observed = laplace == "observed" and not family.canonical
        self.lme4_criterion = (
            laplace == "expected"
            and family.dispersion is Dispersion.SCALE
            and family.has_lme4_aic
            and nagq <= 1
        )
        self.spec = spec
        self.design = design
        self.family = family
        self.y = np.ascontiguousarray(design.y, dtype=float)
        self.n = design.n
        self.w0 = np.ascontiguousarray(design.weights if design.weights is not None else np.ones(self.n))
        self.offset = design.offset if design.offset is not None else np.zeros(self.n)
        self.X = np.ascontiguousarray(design.X, dtype=float)
        self.groups = [(g.codes, g.values) for g in design.groups]
        nl = [g.n_levels for g in spec.groupings]
        self.builder_u = CrossProductBuilder(self.groups, nl, np.zeros((self.n, 0)))
        self.builder_ub = CrossProductBuilder(self.groups, nl, self.X)
        family.check(self.y, self.w0)
        self.mustart = family.mustart(self.y, self.w0)
        self._log_const = float(np.sum(family.logpdf_constant(self.y, self.w0)))
        # every row's random-effect values and the position of its effects in the
        # flat vector of all Lambda u: the first block's, then the builder's rest columns
        b = self.builder_u
        q1, n1q1 = b.layout.q1, b.layout.n1 * b.layout.q1
        self._V = np.ascontiguousarray(np.concatenate([b.v1, b.zv], axis=1), dtype=float)
        self._idx = np.concatenate([b.codes1[:, None] * q1 + np.arange(q1)[None, :], n1q1 + b.zc], axis=1)
        # a family without a kernel code runs its row passes in NumPy
        self._family_code = -1 if family.kernel_code is None else family.kernel_code
        self.compiled = compiled and self._family_code >= 0
        # per builder (u alone; u and beta): the Schur update's pair structure where it
        # pays, and the rows' products of X for the compiled pass
        self._fixed: dict[bool, tuple[PairStructure | None, Any]] = {}
        for joint, builder in ((False, self.builder_u), (True, self.builder_ub)):
            xx = None
            if self.compiled:
                from ..linalg.kernels import x_outer

                xx = x_outer(builder.X)
            self._fixed[joint] = (_pair_structure(builder), xx)

    @property
    def estimates_dispersion(self) -> bool:
        """Whether the dispersion is a parameter of the deviance optimized (not under
        :attr:`lme4_criterion`, which is free of it)."""
        return self.family.has_dispersion and not self.lme4_criterion

    def lme4_dispersion(self, r: PirlsResult) -> float:
        """The dispersion lme4 reports with its criterion (``sigma(m)^2``):
        ``(sum w (y - mu)^2 / V(mu) + |u|^2) / n``, the penalized Pearson sum over n."""
        pearson = float(np.sum(self.w0 * (self.y - r.mu) ** 2 / self.family.variance(r.mu, 1.0)))
        return (pearson + r.sqr_u) / self.n

    # ---- helpers -----------------------------------------------------
    def cond_loglik(self, mu: np.ndarray, disp: float) -> float:
        """sum log p(y | mu) (the mu-free part cached)."""
        return float(np.sum(self.family.logpdf_kernel(self.y, mu, self.w0, disp))) + self._log_const

    def _zeros_u(self) -> list[np.ndarray]:
        return [np.zeros((g.n_levels, g.q)) for g in self.spec.groupings]

    def _predictor(
        self,
        u: list[np.ndarray],
        beta: np.ndarray,
        Ts: list[np.ndarray],
        disp: float,
        base: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """eta, mu and sum log p(y | mu) at (u, beta); the log-likelihood is -inf
        where a mean leaves the family's support. ``base``: ``offset + X beta`` if known."""
        if base is None:
            base = self.offset + self.X @ beta if beta.size else self.offset
        b = np.concatenate([(uk @ T.T).ravel() for uk, T in zip(u, Ts)])
        if self.compiled:
            from ..linalg.kernels import linear_predictor

            eta = linear_predictor(base, self._V, self._idx, b)
        else:
            eta = base + np.einsum("ij,ij->i", self._V, b[self._idx])
        mu = self.family.link.inverse(eta)
        ll = self.cond_loglik(mu, disp) if self.family.valid_mu(mu) else -math.inf
        return eta, mu, ll

    def _weighted(
        self, builder: CrossProductBuilder, eta: np.ndarray, mu: np.ndarray, zshift: np.ndarray, disp: float
    ) -> tuple[np.ndarray, CrossProducts]:
        """Working weights and the weighted cross-products of ``[Z X z]`` at eta."""
        mu_eta = self.family.link.mu_eta(eta)
        if builder.dense and self.compiled:
            from ..linalg.kernels import weights_pass

            lay = builder.layout
            W, A11, A1R, ARR = weights_pass(
                eta, mu, mu_eta, self.y, self.w0, zshift, self._family_code, float(disp),
                builder.codes1, builder.v1, builder.zc, builder.zv, builder.X,
                self._fixed[builder is self.builder_ub][1], lay.n1, lay.mz,
            )  # fmt: skip
            return W, CrossProducts(layout=lay, n=self.n, A11=A11, A1R=A1R, ARR=ARR, sum_log_weights=0.0)
        W = self.w0 * mu_eta**2 / self.family.variance(mu, disp)
        z = eta - zshift + (self.y - mu) / mu_eta
        return W, builder.compute(z, W, log_weights=False)

    def _halving(
        self,
        current: tuple[list[np.ndarray], np.ndarray],
        proposed: tuple[list[np.ndarray], np.ndarray],
        pdev: float,
        fresh: bool,
        Ts: list[np.ndarray],
        disp: float,
        base: np.ndarray | None,
    ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray, float, float]:
        """The step from ``current`` (u, beta) towards ``proposed``, halved until the
        penalized deviance does not rise; ``base``: ``offset + X beta`` (beta fixed) or
        None (beta estimated). A first step from the starting means (``fresh``) is
        taken whole, its random effects shrunk only if it leaves the family's support.
        Returns u, beta, eta, mu, loglik and the penalized deviance."""
        (u, b_cur), (u_new, beta_new) = current, proposed
        step = 1.0
        while True:
            u_try = [step * b for b in u_new] if fresh else [a + step * (b - a) for a, b in zip(u, u_new)]
            b_try = beta_new if (fresh or base is not None) else b_cur + step * (beta_new - b_cur)
            eta_try, mu_try, ll_try = self._predictor(u_try, b_try, Ts, disp, base)
            pdev_try = -2 * ll_try + sum(float(np.sum(x * x)) for x in u_try)
            better = fresh or pdev_try <= pdev + 1e-10 * abs(pdev)
            if (math.isfinite(pdev_try) and better) or step < 1e-4:
                return u_try, b_try, eta_try, mu_try, ll_try, pdev_try
            step /= 2

    def _newton(
        self,
        builder: CrossProductBuilder,
        Ts: list[np.ndarray],
        disp: float,
        zshift: np.ndarray,
        joint: bool,
        state: tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray, float],
        converged: bool,
    ) -> tuple[tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray, float], ObservedCurvature]:
        """Newton steps (IRLS with the observed weights) from PIRLS's mode.

        Fisher scoring converges linearly for a non-canonical link, and its stop on
        the change of the penalized deviance leaves the mode off by ~sqrt(tol); the
        gradient of the observed-information Laplace deviance needs it exact. Steps
        while no observed weight is negative and the penalized deviance does not
        rise; ``state`` is (u, beta, eta, mu, loglik), none from a PIRLS that did not
        converge. Returns the new state and the observed curvature there: when the
        last step was below ``NEWTON_STEP_TOL``, that of the step (its random-effects
        block is the curvature at the mode to that precision).
        """
        u, b_cur, eta, mu, loglik = state
        pdev = -2 * loglik + sum(float(np.sum(x * x)) for x in u)
        for _ in range(NEWTON_STEPS if converged else 0):
            d = eta_derivatives(self.family, self.y, eta, mu, self.w0, disp)
            H = d.hessian
            if not np.all(H >= 0):
                break
            step = np.divide(d.score, H, out=np.zeros_like(H), where=H > 0)
            system = self._system(builder, builder.compute(eta - zshift + step, H, log_weights=False))
            f = la.factor(system, Ts)
            sol = la.solve(system, f)
            u_new, b_new = list(sol.u), (sol.beta if joint else b_cur)
            eta_new, mu_new, ll_new = self._predictor(u_new, b_new, Ts, disp, None if joint else zshift)
            pdev_new = -2 * ll_new + sum(float(np.sum(x * x)) for x in u_new)
            if not (math.isfinite(pdev_new) and pdev_new <= pdev + 1e-12 * abs(pdev)):
                break
            size = max(float(np.max(np.abs(a - b), initial=0.0)) for a, b in zip(u_new, u))
            u, b_cur, eta, mu, loglik, pdev = u_new, b_new, eta_new, mu_new, ll_new, pdev_new
            if size < NEWTON_STEP_TOL:
                return (u, b_cur, eta, mu, loglik), ObservedCurvature(H, system, f)
        return (u, b_cur, eta, mu, loglik), self.observed_curvature(eta, mu, disp, Ts)

    def observed_curvature(
        self, eta: np.ndarray, mu: np.ndarray, disp: float, Ts: list[np.ndarray]
    ) -> ObservedCurvature:
        """The observed-information factor of the random effects at eta (not positive
        definite: ``factor`` None)."""
        H = observed_weights(self.family, self.y, eta, mu, self.w0, disp)
        # the response column is not used; any response outside the span of Z will do
        cp = self.builder_u.compute(np.cos(np.arange(self.n) * 1.618), H, log_weights=False)
        system = self._system(self.builder_u, cp)
        try:
            with np.errstate(invalid="ignore"):
                f: Factor | None = la.factor(system, Ts)
        except np.linalg.LinAlgError:
            f = None
        if f is not None and not (math.isfinite(f.logdet_z) and np.all(np.isfinite(f.L1))):
            f = None
        return ObservedCurvature(H, system, f)

    def _system(self, builder: CrossProductBuilder, cp: CrossProducts) -> la.NumpySystem:
        pairs = self._fixed[builder is self.builder_ub][0]
        if pairs is None:
            return la.system(cp)
        return la.system(cp, PairSchur(pairs, np.asarray(cp.A1R)))

    # ---- PIRLS -------------------------------------------------------
    def _start(
        self,
        Ts: list[np.ndarray],
        disp: float,
        fixed_beta: np.ndarray,
        zshift: np.ndarray,
        joint: bool,
        u0: list[np.ndarray] | None,
        beta0: np.ndarray | None,
    ) -> tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray, float, bool]:
        """PIRLS's first point: from the family's starting means (``fresh``: the first
        step is taken whole) or from the warm start given."""
        p = self.X.shape[1]
        if u0 is None and beta0 is None and joint:
            eta = self.family.link.link(self.mustart)
            mu = self.family.link.inverse(eta)
            return self._zeros_u(), np.zeros(p), eta, mu, self.cond_loglik(mu, disp), True
        u = u0 if u0 is not None else self._zeros_u()
        b_cur = fixed_beta if not joint else (beta0 if beta0 is not None else np.zeros(p))
        eta, mu, loglik = self._predictor(u, b_cur, Ts, disp, None if joint else zshift)
        return u, b_cur, eta, mu, loglik, False

    def pirls(
        self,
        theta: np.ndarray,
        beta: np.ndarray | None,
        disp: float = 1.0,
        u0: list[np.ndarray] | None = None,
        beta0: np.ndarray | None = None,
        tol: float | None = None,
        maxit: int = 60,
    ) -> PirlsResult:
        """Conditional modes at theta; ``beta=None`` estimates beta inside PIRLS.

        Stops when an iteration changes the penalized deviance by less than ``tol``
        relative: by default 1e-10 for canonical links, where the iterations are
        Newton's and converge quadratically, and 1e-13 for the others, where the
        expected information makes them converge linearly and a looser stop would
        leave the mode (and the gradient of the Laplace deviance) off by ~1e-3. The
        observed-information Laplace of a log-concave family stops at 1e-10 too:
        Newton steps with the observed weights then finish the mode (:meth:`_newton`).
        """
        disp = 1.0 if self.lme4_criterion else disp  # lme4's: modes and weights at phi = 1
        if tol is None:
            # Newton steps finish the observed Laplace's modes (log-concave families)
            tol = 1e-10 if self.family.canonical or (self.observed and self.family.log_concave) else 1e-13
        Ts = self.spec.templates(theta)
        joint = beta is None
        builder = self.builder_ub if joint else self.builder_u
        p = self.X.shape[1]
        fixed_beta = np.zeros(p) if beta is None else np.asarray(beta, dtype=float)
        zshift = self.offset if joint else self.offset + self.X @ fixed_beta
        u, b_cur, eta, mu, loglik, fresh = self._start(Ts, disp, fixed_beta, zshift, joint, u0, beta0)
        pdev = -2 * loglik + sum(float(np.sum(x * x)) for x in u)
        converged = False
        it = 0
        while it < maxit:
            it += 1
            _, cp = self._weighted(builder, eta, mu, zshift, disp)
            system = self._system(builder, cp)
            sol = la.solve(system, la.factor(system, Ts))
            u_new, beta_new = list(sol.u), (sol.beta if joint else fixed_beta)
            u_try, b_try, eta_try, mu_try, ll_try, pdev_try = self._halving(
                (u, b_cur), (u_new, beta_new), pdev, fresh, Ts, disp, None if joint else zshift
            )
            fresh = False
            delta = abs(pdev - pdev_try)
            u, b_cur, eta, mu, pdev, loglik = u_try, b_try, eta_try, mu_try, pdev_try, ll_try
            if not math.isfinite(pdev):
                break
            if delta < tol * (abs(pdev) + 0.1):
                converged = True
                break
        (u, b_cur, eta, mu, loglik), curvature = self._finish_mode(
            builder, Ts, disp, zshift, joint, (u, b_cur, eta, mu, loglik), converged
        )
        # factor with the working weights at the mode (for log|L|)
        W, cp = self._weighted(builder, eta, mu, zshift, disp)
        result_system = self._system(builder, cp)
        result_f = la.factor(result_system, Ts)
        if not converged:
            warn(
                f"PIRLS did not converge in {maxit} iterations at theta={np.round(theta, 4)}; "
                "the likelihood at this point is approximate",
                ConvergenceWarning,
            )
        return PirlsResult(
            u=u,
            beta=b_cur,
            eta=eta,
            mu=mu,
            weights=W,
            factor=result_f,
            system=result_system,
            loglik_cond=loglik,
            sqr_u=sum(float(np.sum(x * x)) for x in u),
            iterations=it,
            converged=converged,
            observed=curvature,
            lme4_aic=self._lme4_aic(mu) if self.lme4_criterion else None,
        )

    def _finish_mode(
        self,
        builder: CrossProductBuilder,
        Ts: list[np.ndarray],
        disp: float,
        zshift: np.ndarray,
        joint: bool,
        state: tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray, float],
        converged: bool,
    ) -> tuple[tuple[list[np.ndarray], np.ndarray, np.ndarray, np.ndarray, float], ObservedCurvature | None]:
        """Newton steps from PIRLS's mode (:meth:`_newton`), and the observed curvature
        there for the observed Laplace. lme4's criterion is not stationary in u, so its
        modes are finished the same way (else it is noisy at ~1e-6 and BOBYQA stops
        short), the curvature dropped; the steps stop where an observed weight is
        negative or the penalized deviance rises. Other fits: ``state`` as it is."""
        if not (self.observed or self.lme4_criterion):
            return state, None
        state, curvature = self._newton(builder, Ts, disp, zshift, joint, state, converged)
        return state, (curvature if self.observed else None)

    def _lme4_aic(self, mu: np.ndarray) -> float:
        """The family's aic at ``mu`` with lme4's dispersion: the deviance over sum(w);
        infinite where a mean leaves the family's mean space (the optimizer avoids it)."""
        if not self.family.valid_mu(mu):
            return math.inf
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            dev = float(np.sum(self.family.unit_deviance(self.y, mu, self.w0, 1.0)))
            aic = self.family.lme4_aic(self.y, mu, self.w0, dev)
        return aic if math.isfinite(aic) else math.inf
