"""The discretized NPMLE problem: a row-scaled likelihood matrix and row weights.

maximize  sum_i v_i log( sum_j At_ij f_j )  over f >= 0, sum f = 1

with ``At_ij = p(y_i | theta_j) / max_j p(y_i | theta_j)`` (so every row has a 1
and nothing underflows) and ``v`` the row weights divided by their total. The
log-likelihood in full is ``W * objective + sum_i w_i c_i`` with ``c_i`` the log
row maxima and ``W`` the total weight.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from multilevel.errors import ModelError


@dataclass(frozen=True)
class Problem:
    """``At`` (rows x grid), ``v`` (row weights summing to 1), ``c`` (log row maxima), ``total``."""

    At: np.ndarray
    v: np.ndarray
    c: np.ndarray
    total: float

    @classmethod
    def from_log_density(cls, logp: np.ndarray, weights: np.ndarray) -> Problem:
        c = np.max(logp, axis=1)
        bad = ~np.isfinite(c)
        if np.any(bad):
            raise ModelError(
                f"{int(bad.sum())} observation(s) have zero likelihood at every grid point; "
                "widen the grid to cover the data"
            )
        total = float(np.sum(weights))
        return cls(np.exp(logp - c[:, None]), weights / total, c, total)

    def marginal(self, f: np.ndarray) -> np.ndarray:
        """g_i = sum_j At_ij f_j (the scaled marginal density of each row)."""
        return self.At @ f

    def gradient(self, f: np.ndarray) -> np.ndarray:
        """D_j = sum_i v_i At_ij / g_i: the KKT function over the grid, <= 1 at the optimum."""
        g = self.marginal(f)
        return self.At.T @ (self.v / g)

    def objective(self, f: np.ndarray) -> float:
        g = self.marginal(f)
        with np.errstate(divide="ignore"):
            return float(self.v @ np.log(g))

    def loglik(self, f: np.ndarray) -> float:
        """The full log-likelihood of the rows (weights as given, constants included)."""
        return self.total * self.objective(f) + self.total * float(self.v @ self.c)


def subgrid(m: int, size: int) -> np.ndarray:
    """About ``size`` evenly spread column indices of an m-point grid, both ends included."""
    if m <= size:
        return np.arange(m)
    return np.unique(np.round(np.linspace(0, m - 1, size)).astype(int))
