"""The Laplace deviance of a GLMM with one scalar random effect, at many points at once.

With one grouping factor of one column (``(1 | g)``, ``(0 + x | g)``) the
conditional mode separates by level: for each level ``l`` the mode ``u_l``
maximizes ``sum_{i in l} log p(y_i | eta_i) - u_l^2 / 2`` with
``eta_i = x_i'beta + offset_i + theta z_i u_l``, a one-dimensional Newton
(Fisher scoring, which is Newton's method for a canonical link) problem. B points
``(theta_b, beta_b)`` of responses ``k_b`` are solved together as (B, levels)
arrays, each from the last mode found for its response; the Laplace deviance is

    -2 sum_i log p(y_i | mu_i) + sum_l u_l^2 + sum_l log(1 + theta^2 sum_{i in l} z_i^2 W_i)

with ``W`` the working weights at the mode: the same criterion as PIRLS's on the
blocked factor (:mod:`multilevel.glmm.pirls`), whose ``L`` is then diagonal. It
is what the batched Newton minimizer (:mod:`multilevel.optim.newton`) needs to
refit a GLMM to thousands of simulated responses.

It applies to canonical links of families without a dispersion parameter
(binomial, Poisson), where every eta gives a valid mean and the log-likelihood
is concave in eta.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: most Newton iterations for the modes, and the step below which they stop
MAX_ITER = 50
STEP_TOL = 1e-11


def batchable(spec: Any, family: Any, nagq: int) -> bool:
    """Whether :class:`BatchLaplace` applies to this model."""
    return (
        nagq == 1
        and len(spec.groupings) == 1
        and spec.groupings[0].q == 1
        and family.canonical
        and not family.has_dispersion
    )


class BatchLaplace:
    """Laplace deviance at points ``(theta, beta)`` (B, 1 + p) of responses ``Y[:, k]``."""

    def __init__(self, design: Any, family: Any, Y: np.ndarray, n_levels: int) -> None:
        g = design.groups[0]
        self.family = family
        self.codes = g.codes
        self.z = g.values[:, 0]
        self.n1 = int(n_levels)
        self.X = design.X
        n = design.n
        self.w0 = design.weights if design.weights is not None else np.ones(n)
        self.offset = design.offset if design.offset is not None else np.zeros(n)
        self.Y = np.ascontiguousarray(np.asarray(Y, dtype=float).T)  # (R, n)
        self.S = np.zeros((n, self.n1))
        self.S[np.arange(n), self.codes] = 1.0
        self.const = np.array([float(np.sum(family.logpdf_constant(y, self.w0))) for y in self.Y])
        self.u = np.zeros((self.Y.shape[0], self.n1))

    def _loglik(self, y: np.ndarray, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mu = self.family.link.inverse(eta)
        return mu, self.family.logpdf_kernel(y, mu, self.w0, 1.0)

    def modes(self, P: np.ndarray, which: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Conditional modes (B, n1), the fitted means' log densities (B,) and log|L|^2."""
        t, beta = P[:, 0], P[:, 1:]
        base = self.offset + beta @ self.X.T  # (B, n)
        tz = t[:, None] * self.z[None, :]
        y = self.Y[which]
        u = self.u[which].copy()
        link, fam, S, codes = self.family.link, self.family, self.S, self.codes
        eta = base + tz * u[:, codes]
        mu, ll = self._loglik(y, eta)
        pen = -2.0 * (ll @ S) + u * u  # penalized deviance per level
        for _ in range(MAX_ITER):
            mu_eta = link.mu_eta(eta)
            var = fam.variance(mu, 1.0)
            score = self.w0 * (y - mu) * mu_eta / var
            W = self.w0 * mu_eta * mu_eta / var
            step = ((tz * score) @ S - u) / ((tz * tz * W) @ S + 1.0)
            scale = np.ones_like(step)
            for _half in range(30):
                u_try = u + scale * step
                eta_try = base + tz * u_try[:, codes]
                mu_try, ll_try = self._loglik(y, eta_try)
                pen_try = -2.0 * (ll_try @ S) + u_try * u_try
                worse = ~(pen_try <= pen + 1e-12 * np.abs(pen))
                if not worse.any():
                    break
                scale = np.where(worse, scale * 0.5, scale)
            u, eta, mu, ll, pen = u_try, eta_try, mu_try, ll_try, pen_try
            if np.all(np.abs(scale * step) <= STEP_TOL * (1.0 + np.abs(u))):
                break
        mu_eta = link.mu_eta(eta)
        W = self.w0 * mu_eta * mu_eta / fam.variance(mu, 1.0)
        logdet = np.log((tz * tz * W) @ S + 1.0).sum(axis=1)
        self.u[which] = u
        return u, ll.sum(axis=1) + self.const[which], logdet

    def __call__(self, P: np.ndarray, which: np.ndarray) -> np.ndarray:
        """The Laplace deviance at every point (inf where it is not finite)."""
        u, ll, logdet = self.modes(np.atleast_2d(P), which)
        dev = -2.0 * ll + np.sum(u * u, axis=1) + logdet
        return np.where(np.isfinite(dev), dev, np.inf)
