"""The Gamma family: positive responses with a constant coefficient of variation."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..lazy import lazy_module
from ..linalg.ops import NUMPY, ArrayOps
from .base import Dispersion, Family, check_positive
from .registry import register_family

special = lazy_module("scipy.special")


class Gamma(Family):
    """Gamma with mean mu and dispersion phi = 1 / shape (the sampler draws the shape)."""

    name = "Gamma"
    default_link = "inverse"
    links = ("inverse", "log", "identity")
    # the natural parameter is -1/mu: canonical up to a linear map
    canonical_link = "inverse"
    log_concave_links = ("log",)
    dispersion = Dispersion.SCALE
    dispersion_label = "dispersion"
    dispersion_symbol = "φ"
    sampler_dispersion = "shape"
    kernel_code = 3

    def variance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return disp * mu * mu

    def dvariance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return 2.0 * disp * mu

    def d2variance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return np.full_like(mu, 2.0 * disp, dtype=float)

    def d2variance_dmu_ddisp(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return 2.0 * mu

    def dvariance_ddisp(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return mu * mu

    def dlogpdf_ddisp(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float) -> np.ndarray:
        shape = w / disp
        dshape = np.log(shape * y / mu) + 1.0 - y / mu - special.digamma(shape)
        return dshape * (-w / disp**2)

    def logpdf(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float, ops: ArrayOps = NUMPY) -> Any:
        shape = w / disp
        return (
            shape * ops.xp.log(shape * y / mu) - shape * y / mu - ops.xp.log(y) - ops.special.gammaln(shape)
        )

    def random(self, mu: np.ndarray, w: np.ndarray, disp: float, rng: np.random.Generator) -> np.ndarray:
        shape = w / disp
        return rng.gamma(shape, mu / shape)

    def unit_deviance(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float) -> np.ndarray:
        return 2 * w * (-np.log(y / mu) + (y - mu) / mu)

    def lme4_aic(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, dev: float) -> float:
        """``-2 sum w log dgamma(y; shape 1/d, scale mu d) + 2``, ``d = dev / sum(w)``
        (R's ``Gamma()$aic``: the prior weights multiply the log density, not the shape)."""
        d = dev / float(np.sum(w))
        a = 1.0 / d
        logf = -a * np.log(mu * d) - special.gammaln(a) + (a - 1.0) * np.log(y) - y / (mu * d)
        return -2.0 * float(np.sum(w * logf)) + 2.0

    def check(self, y: np.ndarray, w: np.ndarray) -> None:
        check_positive(y, "Gamma")

    def mustart(self, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        return y.astype(float)

    def valid_mu(self, mu: np.ndarray) -> bool:
        return bool(np.all(mu > 0))

    def default_dispersion(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray) -> float:
        return float(np.mean(w * ((y - mu) / mu) ** 2))

    def dispersion_from_sampled(self, value: Any) -> Any:
        return 1.0 / value  # shape -> phi

    def sampled_from_dispersion(self, disp: Any) -> Any:
        return 1.0 / disp


register_family(Gamma, aliases=("gamma",))
