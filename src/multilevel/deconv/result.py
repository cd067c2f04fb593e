"""The NPMLE result record and its posterior summaries."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from . import posterior as post
from .data import prepare_data
from .kernels import get_kernel


@dataclass(frozen=True, eq=False)
class NpmleResult:
    """The fitted mixing distribution on a grid, its optimizer record, and the data it came from.

    Attributes
    ----------
    family : the kernel's family name (``"gaussian"``, ``"poisson"``, ``"binomial"``).
    grid, weights : the grid and the prior weights on it (exact zeros off the support).
    loglik : the maximized log-likelihood, full log densities, observation weights as given.
    kkt_max, kkt_argmax : max over the grid of D(theta) = (1/W) sum_i w_i p(y_i|theta)/fhat(y_i)
        and where it is; 1 at the optimum. ``gap_bound`` = W (kkt_max - 1) bounds how far
        ``loglik`` is below the grid optimum.
    method : ``"interior-point + active-set"`` or ``"em"``.
    iterations : interior-point iterations (EM: EM steps); ``polish_rounds``: active-set rounds.
    seconds, converged : wall time of the solve and whether the certificate was reached.
    n, rows : observations, and the rows the solver saw (equal rows merged, which is exact;
        binned rows when ``binned``).
    binned : whether Gaussian observations were binned (an approximation: see ``npmle``);
        ``loglik`` is then of every observation, ``kkt_max`` and ``gap_bound`` of the bins.
    """

    family: str
    grid: np.ndarray
    weights: np.ndarray
    loglik: float
    kkt_max: float
    kkt_argmax: float
    gap_bound: float
    method: str
    iterations: int
    polish_rounds: int
    seconds: float
    converged: bool
    n: int
    rows: int
    binned: bool = False
    y: np.ndarray = field(default_factory=lambda: np.zeros(0), repr=False)
    scale: np.ndarray | None = field(default=None, repr=False)
    group_effects: Any = field(default=None, repr=False)  # a fit's group effects, from deconvolve(fit)

    @property
    def support(self) -> np.ndarray:
        """The atoms of the prior as an (atoms x 2) array of [theta, weight]."""
        keep = self.weights > 0
        return np.column_stack([self.grid[keep], self.weights[keep]])

    def mixing_cdf(self, theta: object) -> np.ndarray:
        """The fitted prior's CDF at ``theta``."""
        atoms, mass = self.support.T
        t = np.asarray(theta, float)
        return np.asarray((atoms[None, :] <= t.reshape(-1, 1)) @ mass).reshape(t.shape)

    def _posterior(
        self, y: np.ndarray | None = None, scale: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        atoms, mass = self.support.T
        if y is None:
            y, scale = self.y, self.scale
        P, log_fhat = post.posterior_matrix(get_kernel(self.family), atoms, mass, y, scale)
        return P, atoms, log_fhat

    def log_marginal(self) -> np.ndarray:
        """log fhat(y_i) = log sum_j f_j p(y_i | theta_j), one per observation."""
        return self._posterior()[2]

    def posterior_mean(self) -> np.ndarray:
        """E[theta_i | y_i] under the fitted prior (Tweedie's formula, in the Gaussian case)."""
        P, atoms, _ = self._posterior()
        return post.mean_sd(P, atoms)[0]

    def posterior_sd(self) -> np.ndarray:
        """The posterior standard deviation of theta_i given y_i."""
        P, atoms, _ = self._posterior()
        return post.mean_sd(P, atoms)[1]

    def posterior_median(self) -> np.ndarray:
        """The smallest atom at which the posterior CDF reaches 1/2."""
        P, atoms, _ = self._posterior()
        return post.quantile(P, atoms, 0.5)

    def posterior_interval(self, level: float = 0.95) -> np.ndarray:
        """Equal-tailed intervals (rows x [lower, upper]) from the discrete posterior.

        The bounds are atoms of the prior: the smallest atom where the posterior
        CDF reaches (1 - level)/2, and the smallest where it reaches (1 + level)/2.
        """
        P, atoms, _ = self._posterior()
        return np.column_stack(post.interval(P, atoms, level))

    def lfdr(self, null: float = 0.0, width: float | None = None) -> np.ndarray:
        """Local false discovery rate: P(|theta_i - null| <= width | y_i).

        ``width`` defaults to the grid's largest spacing, so the mass the NPMLE puts
        on a null atom counts even when it is split between the grid points
        bracketing ``null`` (as it is when ``null`` is not a grid point). The NPMLE's
        atoms near a point null often land a few grid points off it (sampling noise):
        give ``width`` as the half-width of the null region the question is about.
        """
        P, atoms, _ = self._posterior()
        return post.lfdr(P, atoms, null, post.null_width(self.grid) if width is None else width)

    def lfsr(self, null: float = 0.0) -> np.ndarray:
        """Local false sign rate: min(P(theta_i <= null | y_i), P(theta_i >= null | y_i))."""
        P, atoms, _ = self._posterior()
        return post.lfsr(P, atoms, null)

    def predict(
        self, y_new: object, se_new: object = None, trials: object = None, level: float = 0.95
    ) -> pd.DataFrame:
        """Posterior summaries for new observations (with their SEs, or trials) under the fitted prior.

        Returns a frame with ``y``, ``mean``, ``sd``, ``median``, ``lower``, ``upper``
        (the ``level`` interval), ``lfdr`` (null 0, default width) and ``log_marginal``.
        """
        data = prepare_data(get_kernel(self.family), y_new, se=se_new, trials=trials)
        P, atoms, log_fhat = self._posterior(data.y, data.scale)
        mean, sd = post.mean_sd(P, atoms)
        lower, upper = post.interval(P, atoms, level)
        return pd.DataFrame(
            {
                "y": data.y,
                "mean": mean,
                "sd": sd,
                "median": post.quantile(P, atoms, 0.5),
                "lower": lower,
                "upper": upper,
                "lfdr": post.lfdr(P, atoms, 0.0, post.null_width(self.grid)),
                "log_marginal": log_fhat,
            }
        )
