"""Response distributions as small classes in a registry.

Each family gives its variance function, the log density of an observation
(used for the Laplace and quadrature likelihoods, so log-likelihoods are exact
and comparable across fits), unit deviances (for lme4's ``deviance()``
convention), a check of valid responses and a starting mean. Families with a
dispersion or shape parameter (Gaussian, Gamma, inverse Gaussian, negative
binomial) have it estimated by maximum likelihood with the other parameters.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
from scipy import special

from ..errors import DataError
from ..linalg.ops import NUMPY, ArrayOps
from .links import Link, get_link

_EPS = np.finfo(float).eps


def _xlogy_ratio(y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """y log(y / mu) with 0 log 0 = 0."""
    return special.xlogy(y, y) - special.xlogy(y, mu)


class Family(ABC):
    """A response distribution with a default link and the links it allows."""

    name: str = ""
    default_link: str = ""
    links: tuple[str, ...] = ()
    #: whether the family has a dispersion / shape parameter (estimated)
    has_dispersion: bool = False

    def __init__(self, link: str | Link | None = None) -> None:
        self.link = get_link(link or self.default_link)
        if self.link.name not in self.links:
            raise DataError(
                f"link {self.link.name!r} is not available for the {self.name} family; "
                f"choose one of {', '.join(self.links)}"
            )

    @abstractmethod
    def variance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        """Var(y | mu) / prior weight."""

    @abstractmethod
    def dvariance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        """d variance / d mu."""

    def dvariance_ddisp(self, mu: np.ndarray, disp: float) -> np.ndarray:
        """d variance / d dispersion (families with a dispersion or shape)."""
        raise NotImplementedError(f"the {self.name} family has no dispersion parameter")

    def dlogpdf_ddisp(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float) -> np.ndarray:
        """d logpdf / d dispersion of each observation (families with a dispersion or shape)."""
        raise NotImplementedError(f"the {self.name} family has no dispersion parameter")

    @abstractmethod
    def logpdf(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float, ops: ArrayOps = NUMPY) -> Any:
        """Log density of each observation."""

    @abstractmethod
    def unit_deviance(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float) -> np.ndarray:
        """Deviance residuals squared (R's ``dev.resids``)."""

    @abstractmethod
    def random(self, mu: np.ndarray, w: np.ndarray, disp: float, rng: np.random.Generator) -> np.ndarray:
        """Draw responses (on the scale of ``y``: proportions for the binomial) at means ``mu``."""

    @abstractmethod
    def check(self, y: np.ndarray, w: np.ndarray) -> None:
        """Raise a DataError for responses outside the family's support."""

    @abstractmethod
    def mustart(self, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        """A starting mean inside the support (R's ``mustart``)."""

    def valid_mu(self, mu: np.ndarray) -> bool:
        return bool(np.all(np.isfinite(mu)))

    def logpdf_constant(self, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        """The part of ``logpdf`` that depends on neither mu nor the dispersion."""
        return np.zeros_like(y, dtype=float)

    def logpdf_kernel(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float) -> np.ndarray:
        """``logpdf`` less ``logpdf_constant`` (what PIRLS needs, cheaper)."""
        return self.logpdf(y, mu, w, disp)

    def default_dispersion(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray) -> float:
        return 1.0

    @property
    def canonical(self) -> bool:
        """Whether the link is the canonical one (the natural parameter is linear in eta)."""
        return self.link.name == CANONICAL.get(self.name)

    @property
    def log_concave(self) -> bool:
        """Whether log p(y | eta) is concave in eta for every y, so that the penalized
        conditional mode is unique (canonical links, and the pairs in LOG_CONCAVE)."""
        return self.canonical or self.link.name in LOG_CONCAVE.get(self.name, ())

    def __repr__(self) -> str:
        return f"{self.name}(link={self.link.name!r})"


class Binomial(Family):
    """y = proportion of successes, prior weights = number of trials."""

    name = "binomial"
    default_link = "logit"
    links = ("logit", "probit", "cloglog", "log")

    def variance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return mu * (1.0 - mu)

    def dvariance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return 1.0 - 2.0 * mu

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
        return 2 * w * (_xlogy_ratio(y, mu) + _xlogy_ratio(1 - y, 1 - mu))

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


class Poisson(Family):
    name = "poisson"
    default_link = "log"
    links = ("log", "sqrt", "identity")

    def variance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return mu

    def dvariance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return np.ones_like(mu)

    def logpdf(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float, ops: ArrayOps = NUMPY) -> Any:
        return w * (ops.special.xlogy(y, mu) - mu - ops.special.gammaln(y + 1))

    def logpdf_constant(self, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        return -w * special.gammaln(y + 1)

    def logpdf_kernel(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float) -> np.ndarray:
        return w * (special.xlogy(y, mu) - mu)

    def random(self, mu: np.ndarray, w: np.ndarray, disp: float, rng: np.random.Generator) -> np.ndarray:
        return rng.poisson(mu).astype(float)

    def unit_deviance(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float) -> np.ndarray:
        return 2 * w * (_xlogy_ratio(y, mu) - (y - mu))

    def check(self, y: np.ndarray, w: np.ndarray) -> None:
        if np.any(y < 0):
            raise DataError("Poisson response must be non-negative counts; found negative values")
        if np.any(np.abs(y - np.round(y)) > 1e-8):
            raise DataError(
                "Poisson response must be integer counts; found non-integer values "
                "(use a Gamma family for positive continuous data)"
            )

    def mustart(self, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        return y + 0.1

    def valid_mu(self, mu: np.ndarray) -> bool:
        return bool(np.all(mu > 0))


class Gaussian(Family):
    name = "gaussian"
    default_link = "identity"
    links = ("identity", "log", "inverse")
    has_dispersion = True

    def variance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return np.full_like(mu, disp)

    def dvariance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return np.zeros_like(mu)

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


class Gamma(Family):
    """Gamma with mean mu and dispersion phi = 1 / shape."""

    name = "Gamma"
    default_link = "inverse"
    links = ("inverse", "log", "identity")
    has_dispersion = True

    def variance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return disp * mu * mu

    def dvariance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return 2.0 * disp * mu

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

    def check(self, y: np.ndarray, w: np.ndarray) -> None:
        if np.any(y <= 0):
            raise DataError("Gamma response must be positive; found zero or negative values")

    def mustart(self, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        return y.astype(float)

    def valid_mu(self, mu: np.ndarray) -> bool:
        return bool(np.all(mu > 0))

    def default_dispersion(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray) -> float:
        return float(np.mean(w * ((y - mu) / mu) ** 2))


class InverseGaussian(Family):
    name = "inverse_gaussian"
    default_link = "1/mu^2"
    links = ("1/mu^2", "inverse", "log", "identity")
    has_dispersion = True

    def variance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return disp * mu**3

    def dvariance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return 3.0 * disp * mu * mu

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

    def check(self, y: np.ndarray, w: np.ndarray) -> None:
        if np.any(y <= 0):
            raise DataError("inverse Gaussian response must be positive; found zero or negative values")

    def mustart(self, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        return y.astype(float)

    def valid_mu(self, mu: np.ndarray) -> bool:
        return bool(np.all(mu > 0))

    def default_dispersion(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray) -> float:
        return float(np.mean(w * (y - mu) ** 2 / mu**3))


class NegativeBinomial(Family):
    """NB2: Var = mu + mu^2 / shape, the shape estimated (the 'dispersion' slot)."""

    name = "negative_binomial"
    default_link = "log"
    links = ("log", "sqrt", "identity")
    has_dispersion = True

    def variance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return mu + mu * mu / disp

    def dvariance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return 1.0 + 2.0 * mu / disp

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
        return 2 * w * (_xlogy_ratio(y, mu) - (y + k) * np.log((y + k) / (mu + k)))

    def check(self, y: np.ndarray, w: np.ndarray) -> None:
        Poisson.check(self, y, w)  # type: ignore[arg-type]

    def mustart(self, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        return y + 0.1

    def valid_mu(self, mu: np.ndarray) -> bool:
        return bool(np.all(mu > 0))

    def default_dispersion(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray) -> float:
        # moment estimate of the shape from Var = mu + mu^2 / k
        excess = np.mean((y - mu) ** 2 - mu)
        return float(np.clip(np.mean(mu**2) / excess, 0.1, 1e4)) if excess > 0 else 1e4


#: canonical links up to a linear map (Gamma's natural parameter is -1/mu,
#: the inverse Gaussian's -1/(2 mu^2)); the negative binomial's depends on its shape
CANONICAL = {
    "binomial": "logit",
    "poisson": "log",
    "gaussian": "identity",
    "Gamma": "inverse",
    "inverse_gaussian": "1/mu^2",
}

#: non-canonical links under which the log-likelihood is still concave in eta
#: (binomial: probit, cloglog and log; Poisson identity: y log eta - eta; negative
#: binomial and Gamma with log links). Others (Poisson sqrt, symmetric in eta;
#: Gamma identity; the inverse Gaussian's and the Gaussian's non-identity links)
#: can have several conditional modes, and keep lme4's derivative-free stage 2.
LOG_CONCAVE = {
    "binomial": ("probit", "cloglog", "log"),
    "poisson": ("identity",),
    "negative_binomial": ("log",),
    "Gamma": ("log",),
}

FAMILIES: dict[str, type[Family]] = {
    "binomial": Binomial,
    "poisson": Poisson,
    "gaussian": Gaussian,
    "gamma": Gamma,
    "Gamma": Gamma,
    "inverse_gaussian": InverseGaussian,
    "inverse.gaussian": InverseGaussian,
    "negative_binomial": NegativeBinomial,
    "negbin": NegativeBinomial,
    "nbinom2": NegativeBinomial,
}


def get_family(family: str | Family, link: str | Link | None = None) -> Family:
    """A family instance from its name (``"binomial"``, ``"poisson"``, ...) and a link."""
    if isinstance(family, Family):
        return family if link is None else type(family)(link)
    if family not in FAMILIES:
        raise DataError(f"unknown family {family!r}; choose one of {', '.join(sorted(set(FAMILIES)))}")
    return FAMILIES[family](link)
