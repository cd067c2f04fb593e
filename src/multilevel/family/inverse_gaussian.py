"""The inverse Gaussian family: positive, right-skewed responses, Var = phi mu^3."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..linalg.ops import NUMPY, ArrayOps
from .base import Dispersion, Family, check_positive
from .registry import register_family


class InverseGaussian(Family):
    """Inverse Gaussian with mean mu and dispersion phi (the sampler draws 1 / phi)."""

    name = "inverse_gaussian"
    default_link = "1/mu^2"
    links = ("1/mu^2", "inverse", "log", "identity")
    # the natural parameter is -1/(2 mu^2): canonical up to a linear map
    canonical_link = "1/mu^2"
    dispersion = Dispersion.SCALE
    dispersion_label = "dispersion"
    dispersion_symbol = "φ"
    sampler_dispersion = "shape"
    kernel_code = 4

    def variance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return disp * mu**3

    def dvariance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return 3.0 * disp * mu * mu

    def d2variance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return 6.0 * disp * mu

    def d2variance_dmu_ddisp(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return 3.0 * mu * mu

    def dvariance_ddisp(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return mu**3

    def dlogpdf_ddisp(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float) -> np.ndarray:
        return -0.5 / disp + 0.5 * w * (y - mu) ** 2 / (disp**2 * mu * mu * y)

    def logpdf(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float, ops: ArrayOps = NUMPY) -> Any:
        d = disp / w
        return -0.5 * (ops.xp.log(2 * ops.xp.pi * d * y**3) + (y - mu) ** 2 / (d * mu * mu * y))

    def random(self, mu: np.ndarray, w: np.ndarray, disp: float, rng: np.random.Generator) -> np.ndarray:
        from scipy import stats

        return np.asarray(stats.invgauss.rvs(mu * disp / w, scale=w / disp, random_state=rng))

    def unit_deviance(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float) -> np.ndarray:
        return w * (y - mu) ** 2 / (mu * mu * y)

    def lme4_aic(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, dev: float) -> float:
        """``sum(w) (log(2 pi dev / sum(w)) + 1) + 3 sum(w log y) + 2`` (R's
        ``inverse.gaussian()$aic``; free of mu but through ``dev``)."""
        ws = float(np.sum(w))
        return ws * (np.log(2.0 * np.pi * dev / ws) + 1.0) + 3.0 * float(np.sum(w * np.log(y))) + 2.0

    def check(self, y: np.ndarray, w: np.ndarray) -> None:
        check_positive(y, "inverse Gaussian")

    def mustart(self, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        return y.astype(float)

    def valid_mu(self, mu: np.ndarray) -> bool:
        return bool(np.all(mu > 0))

    def default_dispersion(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray) -> float:
        return float(np.mean(w * (y - mu) ** 2 / mu**3))

    def dispersion_from_sampled(self, value: Any) -> Any:
        return 1.0 / value  # shape -> phi

    def sampled_from_dispersion(self, disp: Any) -> Any:
        return 1.0 / disp


register_family(InverseGaussian, aliases=("inverse.gaussian",))
