"""The negative binomial family (NB2): overdispersed counts, Var = mu + mu^2 / k."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..lazy import lazy_module
from ..linalg.ops import NUMPY, ArrayOps
from .base import Dispersion, Family, check_counts, xlogy_ratio
from .registry import register_family

special = lazy_module("scipy.special")


class NegativeBinomial(Family):
    """NB2: Var = mu + mu^2 / shape, the shape k estimated (held in the dispersion slot).

    Its canonical link depends on k, so none is declared.
    """

    name = "negative_binomial"
    default_link = "log"
    links = ("log", "sqrt", "identity")
    log_concave_links = ("log",)
    dispersion = Dispersion.SHAPE
    dispersion_label = "shape"
    dispersion_symbol = "shape"
    sampler_dispersion = "shape"
    kernel_code = 5

    def variance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return mu + mu * mu / disp

    def dvariance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return 1.0 + 2.0 * mu / disp

    def d2variance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return np.full_like(mu, 2.0 / disp, dtype=float)

    def d2variance_dmu_ddisp(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return -2.0 * mu / disp**2

    def dvariance_ddisp(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return -mu * mu / disp**2

    def dlogpdf_ddisp(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float) -> np.ndarray:
        k = disp
        return w * (special.digamma(y + k) - special.digamma(k) + np.log(k / (k + mu)) + (mu - y) / (k + mu))

    def logpdf(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float, ops: ArrayOps = NUMPY) -> Any:
        k = disp
        return w * (
            ops.special.gammaln(y + k)
            - ops.special.gammaln(k)
            - ops.special.gammaln(y + 1)
            + k * ops.xp.log(k / (k + mu))
            + ops.special.xlogy(y, mu / (k + mu))
        )

    def random(self, mu: np.ndarray, w: np.ndarray, disp: float, rng: np.random.Generator) -> np.ndarray:
        return rng.negative_binomial(disp, disp / (disp + mu)).astype(float)

    def unit_deviance(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float) -> np.ndarray:
        k = disp
        return 2 * w * (xlogy_ratio(y, mu) - (y + k) * np.log((y + k) / (mu + k)))

    def check(self, y: np.ndarray, w: np.ndarray) -> None:
        check_counts(y, "negative binomial")

    def mustart(self, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        return y + 0.1

    def valid_mu(self, mu: np.ndarray) -> bool:
        return bool(np.all(mu > 0))

    def default_dispersion(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray) -> float:
        # moment estimate of the shape from Var = mu + mu^2 / k
        excess = np.mean((y - mu) ** 2 - mu)
        return float(np.clip(np.mean(mu**2) / excess, 0.1, 1e4)) if excess > 0 else 1e4


register_family(NegativeBinomial, aliases=("negbin", "nbinom2"))
