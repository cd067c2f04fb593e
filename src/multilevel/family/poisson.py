"""The Poisson family: counts with variance equal to the mean."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..lazy import lazy_module
from ..linalg.ops import NUMPY, ArrayOps
from .base import Family, check_counts, xlogy_ratio
from .registry import register_family

special = lazy_module("scipy.special")


class Poisson(Family):
    """Counts, Var = mu."""

    name = "poisson"
    default_link = "log"
    links = ("log", "sqrt", "identity")
    canonical_link = "log"
    log_concave_links = ("identity",)  # y log eta - eta
    kernel_code = 1

    def variance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return mu

    def dvariance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return np.ones_like(mu)

    def d2variance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return np.zeros_like(mu, dtype=float)

    def logpdf(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float, ops: ArrayOps = NUMPY) -> Any:
        return w * (ops.special.xlogy(y, mu) - mu - ops.special.gammaln(y + 1))

    def logpdf_constant(self, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        return -w * special.gammaln(y + 1)

    def logpdf_kernel(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float) -> np.ndarray:
        return w * (special.xlogy(y, mu) - mu)

    def random(self, mu: np.ndarray, w: np.ndarray, disp: float, rng: np.random.Generator) -> np.ndarray:
        return rng.poisson(mu).astype(float)

    def unit_deviance(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float) -> np.ndarray:
        return 2 * w * (xlogy_ratio(y, mu) - (y - mu))

    def check(self, y: np.ndarray, w: np.ndarray) -> None:
        check_counts(y, "Poisson")

    def mustart(self, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        return y + 0.1

    def valid_mu(self, mu: np.ndarray) -> bool:
        return bool(np.all(mu > 0))


register_family(Poisson)
