"""The Gaussian family: with the identity link, the linear mixed model."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..linalg.ops import NUMPY, ArrayOps
from .base import Dispersion, Family
from .registry import register_family


class Gaussian(Family):
    """Normal responses; the dispersion slot holds the residual variance sigma^2.

    With the identity link the model is linear: fitted by REML / ML on the LMM
    path, ``se()`` may give known residual SDs, and the summary shows sigma as the
    random-effects table's Residual row. Other links are fitted as GLMMs.
    """

    name = "gaussian"
    default_link = "identity"
    links = ("identity", "log", "inverse")
    canonical_link = "identity"
    linear_link = "identity"
    dispersion = Dispersion.SCALE
    dispersion_label = "residual variance"
    dispersion_symbol = "σ"
    residual_row = True
    sampler_dispersion = "sigma"
    known_se = True
    kernel_code = 2

    def variance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return np.full_like(mu, disp)

    def dvariance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return np.zeros_like(mu)

    def d2variance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return np.zeros_like(mu, dtype=float)

    def d2variance_dmu_ddisp(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return np.zeros_like(mu, dtype=float)

    def dvariance_ddisp(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return np.ones_like(mu)

    def dlogpdf_ddisp(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float) -> np.ndarray:
        return -0.5 / disp + 0.5 * w * (y - mu) ** 2 / disp**2

    def logpdf(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float, ops: ArrayOps = NUMPY) -> Any:
        return -0.5 * (ops.xp.log(2 * ops.xp.pi * disp / w) + w * (y - mu) ** 2 / disp)

    def random(self, mu: np.ndarray, w: np.ndarray, disp: float, rng: np.random.Generator) -> np.ndarray:
        return rng.normal(mu, np.sqrt(disp / w))

    def unit_deviance(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float) -> np.ndarray:
        return w * (y - mu) ** 2

    def lme4_aic(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, dev: float) -> float:
        """``n (log(2 pi dev / n) + 1) + 2 - sum(log w)``, ``n`` the number of
        observations (R's ``gaussian()$aic``)."""
        n = y.size
        return n * (float(np.log(2.0 * np.pi * dev / n)) + 1.0) + 2.0 - float(np.sum(np.log(w)))

    def check(self, y: np.ndarray, w: np.ndarray) -> None:
        return None

    def mustart(self, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        y = y.astype(float)
        if self.link.name == "identity":
            return y
        # log and inverse links need a positive start
        pos = y[y > 0]
        fill = float(pos.mean()) if pos.size else 1.0
        return np.where(y > 0, y, fill)

    def default_dispersion(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray) -> float:
        return float(np.sum(w * (y - mu) ** 2) / y.size)

    def dispersion_from_sampled(self, value: Any) -> Any:
        return value * value  # sigma -> sigma^2

    def sampled_from_dispersion(self, disp: Any) -> Any:
        return np.sqrt(disp)


register_family(Gaussian)
