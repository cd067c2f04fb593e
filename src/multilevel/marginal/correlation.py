"""Working correlation structures and their moment estimators (as geepack's).

Each structure builds a cluster's working correlation from alpha and
estimates alpha from Pearson residuals standardized by the scale phi, as
geepack does: sums of residual products over the number of pairs, without a
degrees-of-freedom correction (the same holds for phi = sum r^2 / N).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ..errors import DataError

NEG_MARGIN = 0.95


class WorkingCorrelation(ABC):
    name: str = ""

    def __init__(self) -> None:
        self.alpha = self.initial()

    def initial(self) -> np.ndarray:
        return np.zeros(0)

    @abstractmethod
    def matrix(self, times: np.ndarray) -> np.ndarray:
        """Working correlation of one cluster, observed at ``times`` (0-based positions)."""

    @abstractmethod
    def estimate(self, resid: list[np.ndarray], times: list[np.ndarray], phi: float, p: int) -> np.ndarray:
        """Moment estimate of alpha from each cluster's Pearson residuals."""

    def describe(self) -> str:
        return self.name


class Independence(WorkingCorrelation):
    name = "independence"

    def matrix(self, times: np.ndarray) -> np.ndarray:
        return np.eye(times.size)

    def estimate(self, resid: list[np.ndarray], times: list[np.ndarray], phi: float, p: int) -> np.ndarray:
        return np.zeros(0)


class Exchangeable(WorkingCorrelation):
    name = "exchangeable"

    def initial(self) -> np.ndarray:
        return np.zeros(1)

    def matrix(self, times: np.ndarray) -> np.ndarray:
        n = times.size
        a = float(self.alpha[0])
        return np.full((n, n), a) + (1 - a) * np.eye(n)

    def estimate(self, resid: list[np.ndarray], times: list[np.ndarray], phi: float, p: int) -> np.ndarray:
        num = 0.0
        pairs = 0
        n_max = 1
        for r in resid:
            s = r.sum()
            num += 0.5 * (s * s - float(r @ r))
            pairs += r.size * (r.size - 1) // 2
            n_max = max(n_max, r.size)
        alpha = num / (pairs * phi)
        # with few clusters the moment estimate can fall below -1/(n - 1), where the
        # largest cluster's working correlation is no longer positive definite
        if n_max > 1:
            alpha = max(alpha, -NEG_MARGIN / (n_max - 1))
        return np.array([min(alpha, 1 - 1e-8)])


class AR1(WorkingCorrelation):
    """Corr(j, k) = alpha^|t_j - t_k|.

    alpha solves geepack's estimating equation over all pairs in a cluster,
    ``sum (r_j r_k / phi - alpha^d) d alpha^(d - 1) = 0`` with d the time lag.
    """

    name = "ar1"

    def initial(self) -> np.ndarray:
        return np.zeros(1)

    def matrix(self, times: np.ndarray) -> np.ndarray:
        lag = np.abs(times[:, None] - times[None, :])
        return float(self.alpha[0]) ** lag

    def estimate(self, resid: list[np.ndarray], times: list[np.ndarray], phi: float, p: int) -> np.ndarray:
        from scipy.optimize import brentq

        prods, lags = [], []
        for r, t in zip(resid, times):
            j, k = np.triu_indices(r.size, 1)
            prods.append(r[j] * r[k] / phi)
            lags.append(np.abs(t[k] - t[j]))
        e = np.concatenate(prods)
        d = np.concatenate(lags).astype(float)

        def score(a: float) -> float:
            return float(np.sum((e - a**d) * d * a ** (d - 1)))

        lo, hi = -0.999999, 0.999999
        if score(lo) * score(hi) < 0:
            return np.array([brentq(score, lo, hi, xtol=1e-14)])
        adj = d == 1  # no root inside (-1, 1): the lag-1 moment, clipped
        return np.array([float(np.clip(e[adj].mean(), lo, hi))])


class Unstructured(WorkingCorrelation):
    """A free correlation for every pair of time points (clusters indexed by time)."""

    name = "unstructured"

    def __init__(self, n_times: int) -> None:
        self.n_times = n_times
        super().__init__()

    def initial(self) -> np.ndarray:
        return np.zeros(self.n_times * (self.n_times - 1) // 2)

    def _full(self) -> np.ndarray:
        R = np.eye(self.n_times)
        iu = np.triu_indices(self.n_times, 1)
        R[iu] = self.alpha
        R[(iu[1], iu[0])] = self.alpha
        return R

    def matrix(self, times: np.ndarray) -> np.ndarray:
        return self._full()[np.ix_(times, times)]

    def estimate(self, resid: list[np.ndarray], times: list[np.ndarray], phi: float, p: int) -> np.ndarray:
        T = self.n_times
        num = np.zeros((T, T))
        cnt = np.zeros((T, T))
        for r, t in zip(resid, times):
            num[np.ix_(t, t)] += np.outer(r, r)
            cnt[np.ix_(t, t)] += 1
        iu = np.triu_indices(T, 1)
        return num[iu] / (cnt[iu] * phi)

    def describe(self) -> str:
        return f"unstructured ({self.n_times} time points)"


def make_correlation(corstr: str, n_times: int) -> WorkingCorrelation:
    if corstr == "independence":
        return Independence()
    if corstr == "exchangeable":
        return Exchangeable()
    if corstr in ("ar1", "AR1", "ar(1)"):
        return AR1()
    if corstr == "unstructured":
        return Unstructured(n_times)
    raise DataError(
        f"unknown working correlation {corstr!r}; choose independence, exchangeable, ar1 or unstructured"
    )
