"""The binomial family: y the proportion of successes, prior weights the numbers of trials."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import DataError
from ..lazy import lazy_module
from ..linalg.ops import NUMPY, ArrayOps
from .base import Family, xlogy_ratio
from .registry import register_family

special = lazy_module("scipy.special")


class Binomial(Family):
    """y = proportion of successes, prior weights = number of trials."""

    name = "binomial"
    default_link = "logit"
    links = ("logit", "probit", "cloglog", "log")
    canonical_link = "logit"
    log_concave_links = ("probit", "cloglog", "log")
    trials_response = True
    bounded_mean = True
    kernel_code = 0

    def variance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return mu * (1.0 - mu)

    def dvariance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return 1.0 - 2.0 * mu

    def d2variance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return np.full_like(mu, -2.0, dtype=float)

    def logpdf(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float, ops: ArrayOps = NUMPY) -> Any:
        k = w * y
        return (
            ops.special.gammaln(w + 1)
            - ops.special.gammaln(k + 1)
            - ops.special.gammaln(w - k + 1)
            + ops.special.xlogy(k, mu)
            + ops.special.xlog1py(w - k, -mu)
        )

    def logpdf_constant(self, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        k = w * y
        return special.gammaln(w + 1) - special.gammaln(k + 1) - special.gammaln(w - k + 1)

    def logpdf_kernel(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float) -> np.ndarray:
        k = w * y
        return special.xlogy(k, mu) + special.xlog1py(w - k, -mu)

    def random(self, mu: np.ndarray, w: np.ndarray, disp: float, rng: np.random.Generator) -> np.ndarray:
        trials = np.round(w).astype(np.int64)
        return rng.binomial(trials, mu) / np.maximum(trials, 1)

    def unit_deviance(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float) -> np.ndarray:
        return 2 * w * (xlogy_ratio(y, mu) + xlogy_ratio(1 - y, 1 - mu))

    def check(self, y: np.ndarray, w: np.ndarray) -> None:
        if np.any((y < 0) | (y > 1)):
            raise DataError(
                "binomial response must be 0/1, a proportion in [0, 1] with weights= trials, "
                "or cbind(successes, failures) with successes <= trials"
            )

    def mustart(self, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        return (w * y + 0.5) / (w + 1)

    def valid_mu(self, mu: np.ndarray) -> bool:
        return bool(np.all((mu > 0) & (mu < 1)))


register_family(Binomial)
