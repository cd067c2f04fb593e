"""Penalized iteratively reweighted least squares on the blocked Cholesky.

At given theta (and beta, unless it is estimated inside PIRLS as lme4's
``nAGQ = 0`` first stage), the conditional mode ``u`` of the spherical random
effects maximizes ``sum log p(y | u) - |u|^2 / 2``. Each IRLS step is a weighted
linear mixed-model solve: the cross-products of ``[Z X z]`` with the working
weights (a pass over the rows, :mod:`multilevel.glmm.rows`, in memory or on a
cluster) and the
blocked factor and solver of :mod:`multilevel.linalg.numpy_backend`, the same as the
LMM's. Steps are halved when the penalized deviance does not decrease.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConvergenceWarning, ModelError, warn
from ..family import Dispersion, Family
from ..linalg import numpy_backend as la
from ..linalg.blocked import PairSchur
from ..linalg.crossprod import CrossProducts, layout_of
from ..linalg.factor import Factor
from ..model.design import Design
from ..model.spec import ModelSpec
from .rows import GlmmRows

#: the Laplace approximations: the log-determinant from the observed Hessian of the
#: joint log density (glmmTMB's; the default) or from the expected (Fisher) weights (lme4's)
LAPLACE_METHODS = ("observed", "expected")


def check_laplace(laplace: Any) -> str:
    """The ``laplace=`` of a GLMM fit, checked (None: the default, ``"observed"``)."""
    if laplace is None:
        return LAPLACE_METHODS[0]
    if not isinstance(laplace, str) or laplace not in LAPLACE_METHODS:
        raise ModelError(
            f"laplace must be 'observed' (the observed information, as glmmTMB; the default) or "
            f"'expected' (the expected information, as lme4), got {laplace!r}"
        )
    return laplace


@dataclass(frozen=True)
class ObservedCurvature:
    """``M_H = Lambda'Z'H Z Lambda + I`` at the mode, ``H = -d^2 log p(y | eta) / d eta^2``
    the observed weights: minus the Hessian of the penalized log-likelihood in u."""

    system: la.NumpySystem  # the cross-products of Z with weights H
    factor: Factor | None  # None where M_H is not positive definite


@dataclass(frozen=True)
class PirlsResult:
    u: list[np.ndarray]  # per block (n_levels, q)
    beta: np.ndarray
    state: Any  # the rows' eta and mu at the mode (a RowState, or a cluster's handle)
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
    def eta(self) -> np.ndarray:
        """The linear predictor at the mode (rows in memory only)."""
        return np.asarray(self.state.eta)

    @property
    def mu(self) -> np.ndarray:
        """The means at the mode (rows in memory only)."""
        return np.asarray(self.state.mu)

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
        rows: Any = None,
    ) -> None:
        # ``compiled``: the row passes run through the Numba kernels (GlmmRows);
        # ``laplace``: one of LAPLACE_METHODS; ``nagq``: the fit's quadrature nodes
        # (lme4's criterion is the Laplace one's, nagq <= 1); ``rows``: the row passes
        # (default: GlmmRows of the design; a cluster's for partitioned data)
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
        nl = [g.n_levels for g in spec.groupings]
        self.rows = GlmmRows(design, nl, family, compiled=compiled) if rows is None else rows
        self.n = self.rows.n
        sizes = [(g.n_levels, g.q) for g in spec.groupings]
        self.p = len(spec.fixed_names)
        self.layout_u = layout_of(sizes, 0)
        # the working cross-products a pass computed with the state it left (see _predictor)
        self._pending: tuple[Any, bool, float, CrossProducts] | None = None

    @property
    def compiled(self) -> bool:
        """Whether the row passes run through the Numba kernels."""
        return bool(self.rows.compiled)

    # the rows' arrays (rows in memory only)
    @property
    def y(self) -> np.ndarray:
        return np.asarray(self.rows.y)

    @property
    def w0(self) -> np.ndarray:
        return np.asarray(self.rows.w0)

    @property
    def offset(self) -> np.ndarray:
        return np.asarray(self.rows.offset)

    @property
    def X(self) -> np.ndarray:
        return np.asarray(self.rows.X)

    @property
    def estimates_dispersion(self) -> bool:
        """Whether the dispersion is a parameter of the deviance optimized (not under
        :attr:`lme4_criterion`, which is free of it)."""
        return self.family.has_dispersion and not self.lme4_criterion

    def lme4_dispersion(self, r: PirlsResult) -> float:
        """The dispersion lme4 reports with its criterion (``sigma(m)^2``):
        ``(sum w (y - mu)^2 / V(mu) + |u|^2) / n``, the penalized Pearson sum over n."""
        _, pearson = self.rows.run("pearson", r.state)
        return (pearson + r.sqr_u) / self.n

    # ---- helpers -----------------------------------------------------
    def _zeros_u(self) -> list[np.ndarray]:
        return [np.zeros((g.n_levels, g.q)) for g in self.spec.groupings]

    def _predictor(
        self,
        u: list[np.ndarray],
        beta: np.ndarray,
        Ts: list[np.ndarray],
        disp: float,
        weights_for: bool | None = None,
    ) -> tuple[Any, float]:
        """The rows' state (eta, mu) and sum log p(y | mu) at (u, beta); the log-likelihood
        is -inf where a mean leaves the family's support. ``weights_for`` (``joint``): the
        same pass computes the working cross-products there too, kept for the
        :meth:`_weighted` that PIRLS's next iteration asks of the point (one pass, not two)."""
        b = np.concatenate([(uk @ T.T).ravel() for uk, T in zip(u, Ts)])
        if weights_for is None:
            return self.rows.run("predict", None, b, beta, disp)
        state, (ll, cp) = self.rows.run("predict_weighted", None, b, beta, disp, weights_for)
        self._pending = (state, weights_for, disp, cp) if math.isfinite(ll) else None
        return state, ll

    def _weighted(self, joint: bool, state: Any, beta: np.ndarray, disp: float) -> CrossProducts:
        """The weighted cross-products of ``[Z X z]`` at the state (``beta`` held fixed
        unless ``joint``): those the state's own pass computed, else one more pass."""
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] is state and pending[1] == joint and pending[2] == disp:
            return pending[3]
        return self.rows.run("weighted", state, joint, None if joint else beta, disp)[1]

    def _halving(
        self,
        current: tuple[list[np.ndarray], np.ndarray],
        proposed: tuple[list[np.ndarray], np.ndarray],
        pdev: float,
        fresh: bool,
        Ts: list[np.ndarray],
        disp: float,
        joint: bool,
    ) -> tuple[list[np.ndarray], np.ndarray, Any, float, float]:
        """The step from ``current`` (u, beta) towards ``proposed``, halved until the
        penalized deviance does not rise (beta moves only when ``joint``). A first step
        from the starting means (``fresh``) is taken whole, its random effects shrunk
        only if it leaves the family's support. Returns u, beta, the rows' state,
        loglik and the penalized deviance."""
        (u, b_cur), (u_new, beta_new) = current, proposed
        step = 1.0
        while True:
            u_try = [step * b for b in u_new] if fresh else [a + step * (b - a) for a, b in zip(u, u_new)]
            b_try = beta_new if (fresh or not joint) else b_cur + step * (beta_new - b_cur)
            st_try, ll_try = self._predictor(u_try, b_try, Ts, disp, weights_for=joint)
            pdev_try = -2 * ll_try + sum(float(np.sum(x * x)) for x in u_try)
            better = fresh or pdev_try <= pdev + 1e-10 * abs(pdev)
            if (math.isfinite(pdev_try) and better) or step < 1e-4:
                return u_try, b_try, st_try, ll_try, pdev_try
            step /= 2

    def _newton(
        self,
        Ts: list[np.ndarray],
        disp: float,
        joint: bool,
        state: tuple[list[np.ndarray], np.ndarray, Any, float],
        converged: bool,
    ) -> tuple[tuple[list[np.ndarray], np.ndarray, Any, float], ObservedCurvature]:
        """Newton steps (IRLS with the observed weights) from PIRLS's mode.

        Fisher scoring converges linearly for a non-canonical link, and its stop on
        the change of the penalized deviance leaves the mode off by ~sqrt(tol); the
        gradient of the observed-information Laplace deviance needs it exact. Steps
        while no observed weight is negative and the penalized deviance does not
        rise; ``state`` is (u, beta, rows' state, loglik), none from a PIRLS that did
        not converge. Returns the new state and the observed curvature there: when the
        last step was below ``NEWTON_STEP_TOL``, that of the step (its random-effects
        block is the curvature at the mode to that precision).
        """
        u, b_cur, st, loglik = state
        pdev = -2 * loglik + sum(float(np.sum(x * x)) for x in u)
        for _ in range(NEWTON_STEPS if converged else 0):
            _, (negative, cp) = self.rows.run("newton", st, joint, None if joint else b_cur, disp)
            if negative:
                break
            system = self._system(joint, cp)
            f = la.factor(system, Ts)
            sol = la.solve(system, f)
            u_new, b_new = list(sol.u), (sol.beta if joint else b_cur)
            st_new, ll_new = self._predictor(u_new, b_new, Ts, disp)
            pdev_new = -2 * ll_new + sum(float(np.sum(x * x)) for x in u_new)
            if not (math.isfinite(pdev_new) and pdev_new <= pdev + 1e-12 * abs(pdev)):
                break
            size = max(float(np.max(np.abs(a - b), initial=0.0)) for a, b in zip(u_new, u))
            u, b_cur, st, loglik, pdev = u_new, b_new, st_new, ll_new, pdev_new
            if size < NEWTON_STEP_TOL:
                return (u, b_cur, st, loglik), ObservedCurvature(system, f)
        return (u, b_cur, st, loglik), self.observed_curvature(st, disp, Ts)

    def observed_curvature(self, state: Any, disp: float, Ts: list[np.ndarray]) -> ObservedCurvature:
        """The observed-information factor of the random effects at the rows' state (not
        positive definite: ``factor`` None)."""
        _, cp = self.rows.run("observed", state, disp)
        system = self._system(False, cp)
        try:
            with np.errstate(invalid="ignore"):
                f: Factor | None = la.factor(system, Ts)
        except np.linalg.LinAlgError:
            f = None
        if f is not None and not (math.isfinite(f.logdet_z) and np.all(np.isfinite(f.L1))):
            f = None
        return ObservedCurvature(system, f)

    def _system(self, joint: bool, cp: CrossProducts) -> la.NumpySystem:
        pairs = self.rows.pairs[joint]
        if pairs is None:
            return la.system(cp)
        return la.system(cp, PairSchur(pairs, np.asarray(cp.A1R)))

    # ---- PIRLS -------------------------------------------------------
    def _start(
        self,
        Ts: list[np.ndarray],
        disp: float,
        fixed_beta: np.ndarray,
        joint: bool,
        u0: list[np.ndarray] | None,
        beta0: np.ndarray | None,
    ) -> tuple[list[np.ndarray], np.ndarray, Any, float, bool]:
        """PIRLS's first point: from the family's starting means (``fresh``: the first
        step is taken whole) or from the warm start given."""
        if u0 is None and beta0 is None and joint:
            st, ll = self.rows.run("start", None, disp)
            return self._zeros_u(), np.zeros(self.p), st, ll, True
        u = u0 if u0 is not None else self._zeros_u()
        b_cur = fixed_beta if not joint else (beta0 if beta0 is not None else np.zeros(self.p))
        st, loglik = self._predictor(u, b_cur, Ts, disp, weights_for=joint)
        return u, b_cur, st, loglik, False

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
        Each iteration is two passes over the rows: the weighted cross-products, and
        the linear predictor of the step (more where the step is halved).
        """
        disp = 1.0 if self.lme4_criterion else disp  # lme4's: modes and weights at phi = 1
        if tol is None:
            # Newton steps finish the observed Laplace's modes (log-concave families)
            tol = 1e-10 if self.family.canonical or (self.observed and self.family.log_concave) else 1e-13
        Ts = self.spec.templates(theta)
        joint = beta is None
        fixed_beta = np.zeros(self.p) if beta is None else np.asarray(beta, dtype=float)
        u, b_cur, st, loglik, fresh = self._start(Ts, disp, fixed_beta, joint, u0, beta0)
        pdev = -2 * loglik + sum(float(np.sum(x * x)) for x in u)
        converged = False
        it = 0
        while it < maxit:
            it += 1
            system = self._system(joint, self._weighted(joint, st, b_cur, disp))
            sol = la.solve(system, la.factor(system, Ts))
            u_new, beta_new = list(sol.u), (sol.beta if joint else fixed_beta)
            u_try, b_try, st_try, ll_try, pdev_try = self._halving(
                (u, b_cur), (u_new, beta_new), pdev, fresh, Ts, disp, joint
            )
            fresh = False
            delta = abs(pdev - pdev_try)
            u, b_cur, st, pdev, loglik = u_try, b_try, st_try, pdev_try, ll_try
            if not math.isfinite(pdev):
                break
            if delta < tol * (abs(pdev) + 0.1):
                converged = True
                break
        mode = (u, b_cur, st, loglik)
        (u, b_cur, st, loglik), curvature = self._finish_mode(Ts, disp, joint, mode, converged)
        # factor with the working weights at the mode (for log|L|)
        result_system = self._system(joint, self._weighted(joint, st, b_cur, disp))
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
            state=st,
            factor=result_f,
            system=result_system,
            loglik_cond=loglik,
            sqr_u=sum(float(np.sum(x * x)) for x in u),
            iterations=it,
            converged=converged,
            observed=curvature,
            lme4_aic=self.rows.run("lme4_aic", st)[1] if self.lme4_criterion else None,
        )

    def _finish_mode(
        self,
        Ts: list[np.ndarray],
        disp: float,
        joint: bool,
        state: tuple[list[np.ndarray], np.ndarray, Any, float],
        converged: bool,
    ) -> tuple[tuple[list[np.ndarray], np.ndarray, Any, float], ObservedCurvature | None]:
        """Newton steps from PIRLS's mode (:meth:`_newton`), and the observed curvature
        there for the observed Laplace. lme4's criterion is not stationary in u, so its
        modes are finished the same way (else it is noisy at ~1e-6 and BOBYQA stops
        short), the curvature dropped; the steps stop where an observed weight is
        negative or the penalized deviance rises. Other fits: ``state`` as it is."""
        if not (self.observed or self.lme4_criterion):
            return state, None
        state, curvature = self._newton(Ts, disp, joint, state, converged)
        return state, (curvature if self.observed else None)
