"""The built-in links, each registered by name (:func:`multilevel.family.registry.register_link`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..lazy import lazy_module
from ..linalg.ops import NUMPY, ArrayOps
from .base import Link
from .registry import register_link

special = lazy_module("scipy.special")

_EPS = np.finfo(float).eps
_SQRT_2PI = float(np.sqrt(2 * np.pi))


def _norm_pdf(x: np.ndarray) -> np.ndarray:
    # scipy.stats.norm.pdf's own formula, without importing scipy.stats (0.5 s)
    return np.exp(-(np.asarray(x) ** 2) / 2.0) / _SQRT_2PI


class Identity(Link):
    name = "identity"

    def link(self, mu: np.ndarray) -> np.ndarray:
        return np.asarray(mu, dtype=float)

    def inverse(self, eta: np.ndarray, ops: ArrayOps = NUMPY) -> Any:
        return ops.xp.asarray(eta, dtype=float)

    def mu_eta(self, eta: np.ndarray) -> np.ndarray:
        return np.ones_like(eta, dtype=float)

    def mu_eta2(self, eta: np.ndarray) -> np.ndarray:
        return np.zeros_like(eta, dtype=float)

    def mu_eta3(self, eta: np.ndarray) -> np.ndarray:
        return np.zeros_like(eta, dtype=float)


class Log(Link):
    name = "log"

    def link(self, mu: np.ndarray) -> np.ndarray:
        return np.log(mu)

    def inverse(self, eta: np.ndarray, ops: ArrayOps = NUMPY) -> Any:
        return ops.xp.maximum(ops.xp.exp(ops.xp.minimum(eta, 700.0)), _EPS)

    def mu_eta(self, eta: np.ndarray) -> np.ndarray:
        return np.maximum(np.exp(np.minimum(eta, 700.0)), _EPS)

    def mu_eta2(self, eta: np.ndarray) -> np.ndarray:
        return self.mu_eta(eta)

    def mu_eta3(self, eta: np.ndarray) -> np.ndarray:
        return self.mu_eta(eta)


class Logit(Link):
    name = "logit"

    def link(self, mu: np.ndarray) -> np.ndarray:
        return special.logit(mu)

    def inverse(self, eta: np.ndarray, ops: ArrayOps = NUMPY) -> Any:
        return ops.xp.clip(ops.special.expit(eta), _EPS, 1 - _EPS)

    def mu_eta(self, eta: np.ndarray) -> np.ndarray:
        p = special.expit(eta)
        return np.maximum(p * (1 - p), _EPS)

    def mu_eta2(self, eta: np.ndarray) -> np.ndarray:
        p = special.expit(eta)
        return p * (1 - p) * (1 - 2 * p)

    def mu_eta3(self, eta: np.ndarray) -> np.ndarray:
        p = special.expit(eta)
        return p * (1 - p) * (1 - 6 * p * (1 - p))


class Probit(Link):
    name = "probit"

    def link(self, mu: np.ndarray) -> np.ndarray:
        return special.ndtri(mu)

    def inverse(self, eta: np.ndarray, ops: ArrayOps = NUMPY) -> Any:
        return ops.xp.clip(ops.special.ndtr(eta), _EPS, 1 - _EPS)

    def mu_eta(self, eta: np.ndarray) -> np.ndarray:
        return np.maximum(_norm_pdf(eta), _EPS)

    def mu_eta2(self, eta: np.ndarray) -> np.ndarray:
        return -eta * _norm_pdf(eta)

    def mu_eta3(self, eta: np.ndarray) -> np.ndarray:
        return (np.asarray(eta) ** 2 - 1.0) * _norm_pdf(eta)


class Cloglog(Link):
    name = "cloglog"

    def link(self, mu: np.ndarray) -> np.ndarray:
        return np.log(-np.log1p(-mu))

    def inverse(self, eta: np.ndarray, ops: ArrayOps = NUMPY) -> Any:
        return ops.xp.clip(-ops.xp.expm1(-ops.xp.exp(ops.xp.minimum(eta, 700.0))), _EPS, 1 - _EPS)

    def mu_eta(self, eta: np.ndarray) -> np.ndarray:
        eta = np.minimum(eta, 700.0)
        return np.maximum(np.exp(eta - np.exp(eta)), _EPS)

    def mu_eta2(self, eta: np.ndarray) -> np.ndarray:
        eta = np.minimum(eta, 700.0)
        e = np.exp(eta)
        return np.exp(eta - e) * (1.0 - e)

    def mu_eta3(self, eta: np.ndarray) -> np.ndarray:
        eta = np.minimum(eta, 700.0)
        e = np.exp(eta)
        return np.exp(eta - e) * ((1.0 - e) ** 2 - e)


class Sqrt(Link):
    name = "sqrt"

    def link(self, mu: np.ndarray) -> np.ndarray:
        return np.sqrt(mu)

    def inverse(self, eta: np.ndarray, ops: ArrayOps = NUMPY) -> Any:
        return ops.xp.asarray(eta, dtype=float) ** 2

    def mu_eta(self, eta: np.ndarray) -> np.ndarray:
        return 2.0 * np.asarray(eta, dtype=float)

    def mu_eta2(self, eta: np.ndarray) -> np.ndarray:
        return np.full_like(eta, 2.0, dtype=float)

    def mu_eta3(self, eta: np.ndarray) -> np.ndarray:
        return np.zeros_like(eta, dtype=float)

    def valid_eta(self, eta: np.ndarray) -> np.ndarray | None:
        # mu = eta^2 is even: a negative eta is the mirror of a positive one
        return np.asarray(eta) >= 0


class Inverse(Link):
    name = "inverse"

    def link(self, mu: np.ndarray) -> np.ndarray:
        return 1.0 / mu

    def inverse(self, eta: np.ndarray, ops: ArrayOps = NUMPY) -> Any:
        return 1.0 / eta

    def mu_eta(self, eta: np.ndarray) -> np.ndarray:
        return -1.0 / (eta * eta)

    def mu_eta2(self, eta: np.ndarray) -> np.ndarray:
        return 2.0 / eta**3

    def mu_eta3(self, eta: np.ndarray) -> np.ndarray:
        return -6.0 / eta**4


class InverseSquared(Link):
    name = "1/mu^2"

    def link(self, mu: np.ndarray) -> np.ndarray:
        return 1.0 / (mu * mu)

    def inverse(self, eta: np.ndarray, ops: ArrayOps = NUMPY) -> Any:
        return 1.0 / ops.xp.sqrt(eta)

    def mu_eta(self, eta: np.ndarray) -> np.ndarray:
        return -1.0 / (2.0 * eta**1.5)

    def mu_eta2(self, eta: np.ndarray) -> np.ndarray:
        return 0.75 / eta**2.5

    def mu_eta3(self, eta: np.ndarray) -> np.ndarray:
        return -1.875 / eta**3.5


for _cls in (Identity, Log, Logit, Probit, Cloglog, Sqrt, Inverse, InverseSquared):
    register_link(_cls)
