"""Likelihood profiles of a nonlinear mixed model (lme4's ``profile()`` for ``nlmer``-type fits).

Parameters in lme4's order: the random effects' SDs and correlations (theta's
order, named ``sd_Asym|Tree``, ``cor_Asym:age.Asym|Tree``), ``sigma`` for a Gaussian
response, then the fixed effects. With one held fixed, the others minimize the
deviance of the fit (Laplace with sigma as a parameter, or quadrature) by BOBYQA
(:func:`multilevel.optim.profile.minimize_box`); :mod:`multilevel.model.profile`
turns the traces into the ``Profile`` record and ``confint()`` tables.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ..errors import ConvergenceWarning
from ..model.nonlinear import NlmmProblem
from ..optim.profile import BoxProfiler


class NlVarParams:
    """SDs and correlations of every block of a nonlinear problem, from and to theta."""

    def __init__(self, problem: NlmmProblem, columns: list[list[str]]) -> None:
        """``columns``: each covariance group's column names."""
        self.problem = problem
        names = []
        for g, r, c in zip(problem.theta_blocks, problem.theta_rows, problem.theta_cols):
            grouping = problem.blocks[problem.groups[int(g)][0]].grouping
            cols = columns[int(g)]
            names.append(f"sd_{cols[r]}|{grouping}" if r == c else f"cor_{cols[r]}.{cols[c]}|{grouping}")
        self.names = tuple(names)
        self.is_sd = problem.theta_rows == problem.theta_cols

    def from_theta(self, theta: np.ndarray, scale: float) -> np.ndarray:
        pr = self.problem
        out = np.empty(theta.size)
        for b in range(len(pr.groups)):
            q = pr.group_q(b)
            idx = np.flatnonzero(pr.theta_blocks == b)
            T = np.zeros((q, q))
            T[pr.theta_rows[idx], pr.theta_cols[idx]] = theta[idx]
            S = T @ T.T
            sd = np.sqrt(np.diag(S))
            for i in idx:
                r, c = pr.theta_rows[i], pr.theta_cols[i]
                den = sd[r] * sd[c]
                out[i] = scale * sd[r] if r == c else (S[r, c] / den if den > 0 else 0.0)
        return out

    def to_theta(self, v: np.ndarray, scale: float) -> np.ndarray | None:
        """theta from SDs and correlations; None where a block's correlations are not PSD."""
        pr = self.problem
        theta = np.empty(v.size)
        for b in range(len(pr.groups)):
            q = pr.group_q(b)
            idx = np.flatnonzero(pr.theta_blocks == b)
            rows, cols = pr.theta_rows[idx], pr.theta_cols[idx]
            diag = rows == cols
            sd = np.zeros(q)
            sd[rows[diag]] = v[idx[diag]] / scale
            R = np.eye(q)
            R[rows[~diag], cols[~diag]] = v[idx[~diag]]
            R[cols[~diag], rows[~diag]] = v[idx[~diag]]
            try:
                L = np.linalg.cholesky(R + 1e-13 * np.eye(q))
            except np.linalg.LinAlgError:
                return None
            T = sd[:, None] * L
            theta[idx] = T[rows, cols]
        return theta


class NlmmProfiler(BoxProfiler):
    """The deviance of a nonlinear fit with one parameter held fixed (a
    :class:`multilevel.optim.profile.Profiler`)."""

    step_size = 0.1

    def __init__(self, fit: Any) -> None:
        from .glm_laplace import NumpyGlmLaplace
        from .laplace import NlmmObjective
        from .numpy_laplace import NumpyLaplace

        pr: NlmmProblem = fit.problem
        self.problem, self.nagq = pr, fit.nagq
        self.gaussian = self.has_scale = pr.gaussian
        self.n_obs = pr.n
        est = fit.estimate
        self.vp = NlVarParams(pr, [fit._group_columns(g) for g in range(len(pr.groups))])
        self.is_sd = self.vp.is_sd
        self.k, self.p = pr.n_theta, pr.p
        nd = int(self.gaussian)
        sigma = [est.sigma] if nd else []
        self.estimate = np.concatenate([self.vp.from_theta(est.theta, est.sigma), sigma, est.beta])
        self.names = (*self.vp.names, *(["sigma"] if nd else []), *pr.beta_names)
        inf = np.full(self.p, np.inf)
        lo_v = np.where(self.vp.is_sd, 0.0, -1.0)
        hi_v = np.where(self.vp.is_sd, np.inf, 1.0)
        self.lower = np.concatenate([lo_v, [0.0] * nd, -inf])
        self.upper = np.concatenate([hi_v, [np.inf] * nd, inf])
        self.base = float(est.deviance)
        self.se = fit.se.to_numpy()
        self.n_levels = np.array([pr.blocks[pr.groups[int(g)][0]].n_levels for g in pr.theta_blocks])
        self._x_hat = np.concatenate([self.estimate[: self.k], np.log(sigma), est.beta])
        self._typical = np.concatenate([np.full(self.k, 0.5), np.ones(nd), np.maximum(self.se, 1e-3)])
        self._xlo = np.concatenate([lo_v, [-np.inf] * nd, -inf])
        self._xhi = np.concatenate([hi_v, [np.inf] * nd, inf])
        if self.nagq > 1 and self.gaussian:
            self.obj: Any = NlmmObjective(pr)
        else:
            self.obj = NumpyLaplace(pr) if self.gaussian else NumpyGlmLaplace(pr)

    def deviance(self, x: np.ndarray) -> float:
        """The deviance at x = (SDs and correlations, log sigma, beta)."""
        k, nd = self.k, int(self.gaussian)
        sigma = math.exp(x[k]) if nd else 1.0
        theta = self.vp.to_theta(x[:k], sigma)
        if theta is None:
            return math.inf
        beta = x[k + nd :]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            try:
                if not self.gaussian:
                    dev = (
                        self.obj.agq(beta, theta, self.nagq)
                        if self.nagq > 1
                        else self.obj.laplace(beta, theta)
                    )
                    return float(dev)
                if self.nagq > 1:
                    return float(self.obj.agq(beta, theta, sigma, self.nagq))
                m = self.obj.modes(beta, theta)
            except (np.linalg.LinAlgError, FloatingPointError):
                return math.inf
        n = self.problem.n
        dev = m["logdet"] + n * math.log(2 * math.pi * sigma**2) + m["pwrss"] / sigma**2
        return dev if math.isfinite(dev) else math.inf
