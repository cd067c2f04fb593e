"""The two interfaces of a response model: :class:`Family` and :class:`Link`.

A family is a small class that *declares* what the fitting, sampling and
reporting code would otherwise ask by name: whether it has a dispersion or a
shape parameter, the residual scale it reports, how the sampler parametrizes
its dispersion, whether it is the linear-Gaussian case the LMM path fits, which
links are canonical or keep the likelihood log-concave, which prior weights it
uses, the form of its response and its code in the compiled PIRLS kernels.
Code outside :mod:`multilevel.family` reads these declarations and never tests
a family's name. Concrete families live one per module next to this one and are
registered in :mod:`multilevel.family.registry`.

Class attributes of :class:`Family` (defaults in brackets)
---------------------------------------------------------
name
    Registered name (``"poisson"``); also what summaries print.
default_link, links
    The link used when none is given, and every link the family accepts.
canonical_link [None]
    The canonical link (natural parameter linear in eta), if it does not depend
    on a parameter of the family.
log_concave_links [()]
    Non-canonical links under which ``log p(y | eta)`` is still concave in eta,
    so the penalized conditional mode is unique (see :attr:`Family.log_concave`).
dispersion [Dispersion.NONE]
    ``NONE``: fixed at 1; ``SCALE``: ``Var(y) = phi V(mu)``, ``phi`` estimated
    (Gaussian sigma^2, Gamma and inverse-Gaussian phi); ``SHAPE``: a shape
    parameter inside ``V(mu)`` (the negative binomial's k).
dispersion_label [""], dispersion_symbol [""]
    The dispersion's word in text summaries (``"dispersion"``, ``"shape"``) and
    its label as a node of the model graph (``"σ"``, ``"φ"``, ``"shape"``).
residual_row [False]
    Whether summaries show the dispersion as the ``Residual`` row of the
    random-effects table (variance and SD, as lme4 does for the Gaussian)
    rather than on a line of its own.
sampler_dispersion [None]
    Name of the dispersion parameter the Bayesian sampler draws (brms's
    ``"sigma"`` or ``"shape"``); :meth:`Family.dispersion_from_sampled` and
    :meth:`Family.sampled_from_dispersion` map it to and from the family's
    dispersion slot.
linear_link [None]
    The link under which the model is a *linear* mixed model: fitted by
    REML / ML on the LMM path and sampled with the random effects integrated
    out (see :attr:`Family.is_lmm`).
known_se [False]
    Whether ``se()`` in a formula (known residual standard errors) may replace
    the dispersion; such a family's prior weights are then divided by ``se^2``
    (:attr:`multilevel.model.design.Design.residual_weights`).
trials_response [False]
    Whether the response counts successes out of trials: ``cbind(successes,
    failures)``, 0/1, or proportions with ``weights=`` trials. ``y`` is then the
    proportion and the prior weights the numbers of trials.
bounded_mean [False]
    Whether the mean lies in (0, 1), so fitted means at the bounds signal
    complete or quasi-complete separation (checked after a fit).
kernel_code [None]
    The family's variance function in :mod:`multilevel.linalg.kernels` (an
    int); None runs PIRLS's row passes in NumPy.
"""

from __future__ import annotations

import enum
import math
from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from ..errors import DataError, FamilyError
from ..lazy import lazy_module
from ..linalg.ops import NUMPY, ArrayOps

special = lazy_module("scipy.special")


class Dispersion(enum.Enum):
    """What the family's dispersion slot holds."""

    NONE = "none"  # fixed at 1: binomial, Poisson
    SCALE = "scale"  # Var(y) = phi V(mu), phi estimated: Gaussian sigma^2, Gamma, inverse Gaussian
    SHAPE = "shape"  # a shape inside V(mu), estimated: the negative binomial's k


class Link(ABC):
    """eta = link(mu); mu = inverse(eta); mu_eta = d mu / d eta."""

    name: str = ""

    @abstractmethod
    def link(self, mu: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def inverse(self, eta: np.ndarray, ops: ArrayOps = NUMPY) -> Any: ...

    @abstractmethod
    def mu_eta(self, eta: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def mu_eta2(self, eta: np.ndarray) -> np.ndarray:
        """d^2 mu / d eta^2 (for the gradient of the Laplace deviance)."""

    def mu_eta3(self, eta: np.ndarray) -> np.ndarray:
        """d^3 mu / d eta^3 (for the gradient of the observed-information Laplace deviance).

        A link without it is still fitted by the observed-information Laplace, with a
        numerical gradient.
        """
        raise NotImplementedError(f"the {self.name} link does not give d^3 mu / d eta^3")

    def valid_eta(self, eta: np.ndarray) -> np.ndarray | None:
        """Where the link is a one-to-one map of ``eta`` onto the means (R's
        ``valideta``); None where every ``eta`` is (the default)."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class Family(ABC):
    """A response distribution with its link; the class attributes are its declarations
    (listed in the module docstring)."""

    name: str = ""
    default_link: str = ""
    links: tuple[str, ...] = ()
    canonical_link: str | None = None
    log_concave_links: tuple[str, ...] = ()
    dispersion: Dispersion = Dispersion.NONE
    dispersion_label: str = ""
    dispersion_symbol: str = ""
    residual_row: bool = False
    sampler_dispersion: str | None = None
    linear_link: str | None = None
    known_se: bool = False
    trials_response: bool = False
    bounded_mean: bool = False
    kernel_code: int | None = None

    def __init__(self, link: Link) -> None:
        """Instances come from :func:`multilevel.family.registry.get_family`, which
        resolves link names (this module knows no names but its own)."""
        if link.name not in self.links:
            raise FamilyError(
                f"link {link.name!r} is not available for the {self.name} family; "
                f"choose one of {', '.join(self.links)}"
            )
        self.link = link

    # ---- the distribution ------------------------------------------------
    @abstractmethod
    def variance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        """Var(y | mu) / prior weight."""

    @abstractmethod
    def dvariance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        """d variance / d mu."""

    def d2variance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        """d^2 variance / d mu^2 (the third derivative of the log density needs it)."""
        raise NotImplementedError(f"the {self.name} family does not give d^2 variance / d mu^2")

    def dvariance_ddisp(self, mu: np.ndarray, disp: float) -> np.ndarray:
        """d variance / d dispersion (families with a dispersion or shape)."""
        raise NotImplementedError(f"the {self.name} family has no dispersion parameter")

    def d2variance_dmu_ddisp(self, mu: np.ndarray, disp: float) -> np.ndarray:
        """d^2 variance / (d mu d dispersion) (families with a dispersion or shape)."""
        raise NotImplementedError(f"the {self.name} family has no dispersion parameter")

    def dlogpdf_ddisp(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float) -> np.ndarray:
        """d logpdf / d dispersion of each observation (families with a dispersion or shape)."""
        raise NotImplementedError(f"the {self.name} family has no dispersion parameter")

    @abstractmethod
    def logpdf(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float, ops: ArrayOps = NUMPY) -> Any:
        """Log density of each observation, written against ``ops`` (NumPy or JAX)."""

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
        """Whether every mean lies inside the family's mean space."""
        return bool(np.all(np.isfinite(mu)))

    def dlogpdf_dmu(
        self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float, order: int = 2
    ) -> tuple[np.ndarray, ...]:
        """The first ``order`` (1 to 3) derivatives of ``logpdf`` in mu, per observation.

        From the score ``w (y - mu) / V(mu)``, exact for the exponential-dispersion
        families and the negative binomial (``V`` is :meth:`variance`, with the
        dispersion in it); a family whose score has another form overrides this.
        The third derivative needs :meth:`d2variance`.
        """
        r = y - mu
        V = self.variance(mu, disp)
        d1 = w * r / V
        if order == 1:
            return (d1,)
        dV = self.dvariance(mu, disp)
        d2 = -(w + d1 * dV) / V
        if order == 2:
            return d1, d2
        d2V = self.d2variance(mu, disp)
        d3 = (2.0 * w * dV - d1 * (V * d2V - 2.0 * dV * dV)) / (V * V)
        return d1, d2, d3

    def dlogpdf_dmu_ddisp(
        self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float
    ) -> tuple[np.ndarray, np.ndarray]:
        """d / d dispersion of the first two derivatives of ``logpdf`` in mu (the
        families with a dispersion or shape; the same score form as :meth:`dlogpdf_dmu`)."""
        r = y - mu
        V = self.variance(mu, disp)
        dV = self.dvariance(mu, disp)
        Vd = self.dvariance_ddisp(mu, disp)
        dVd = self.d2variance_dmu_ddisp(mu, disp)
        d1d = -w * r * Vd / (V * V)
        d2d = w * (Vd + r * (2.0 * dV * Vd / V - dVd)) / (V * V)
        return d1d, d2d

    def logpdf_constant(self, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        """The part of ``logpdf`` that depends on neither mu nor the dispersion."""
        return np.zeros_like(y, dtype=float)

    def logpdf_kernel(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float) -> np.ndarray:
        """``logpdf`` less ``logpdf_constant`` (what PIRLS needs, cheaper)."""
        return self.logpdf(y, mu, w, disp)

    def default_dispersion(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray) -> float:
        """A moment estimate of the dispersion at means ``mu`` (the optimizer's start)."""
        return 1.0

    def lme4_aic(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, dev: float) -> float:
        """R's ``family()$aic(y, n, mu, wt, dev)`` as lme4's compiled ``glmFamily::aic``
        evaluates it: -2 log-likelihood at means ``mu`` with the dispersion replaced by
        ``dev / sum(w)`` (``dev`` the sum of the deviance residuals), plus 2. It is the
        last term of lme4's ``glmer`` criterion for a family with a scale dispersion
        (see :attr:`~multilevel.glmm.pirls.GlmmProblem.lme4_criterion`); families
        without one do not need it."""
        raise NotImplementedError(f"lme4's aic is not defined here for the {self.name} family")

    @property
    def has_lme4_aic(self) -> bool:
        """Whether the family defines :meth:`lme4_aic` (a registered family with a
        scale dispersion but without it gets the expected-information Laplace
        approximation of the likelihood under ``laplace="expected"``)."""
        return type(self).lme4_aic is not Family.lme4_aic

    # ---- the dispersion, as reported and as sampled -------------------------
    @property
    def has_dispersion(self) -> bool:
        """Whether the dispersion slot is estimated (not fixed at 1)."""
        return self.dispersion is not Dispersion.NONE

    def residual_sd(self, disp: float) -> float:
        """The residual scale lme4's ``sigma()`` reports: ``sqrt(phi)`` for a scale
        dispersion, else 1."""
        return math.sqrt(disp) if self.dispersion is Dispersion.SCALE else 1.0

    def dispersion_from_sampled(self, value: Any) -> Any:
        """The dispersion slot from the sampler's ``sampler_dispersion`` draw (NumPy or JAX)."""
        return value

    def sampled_from_dispersion(self, disp: Any) -> Any:
        """The inverse of :meth:`dispersion_from_sampled`."""
        return disp

    # ---- links ------------------------------------------------------------
    @property
    def is_lmm(self) -> bool:
        """Whether this family and link make a linear mixed model (the LMM path)."""
        return self.linear_link is not None and self.link.name == self.linear_link

    @property
    def canonical(self) -> bool:
        """Whether the link is the canonical one (the natural parameter is linear in eta)."""
        return self.link.name == self.canonical_link

    @property
    def log_concave(self) -> bool:
        """Whether log p(y | eta) is concave in eta for every y, so that the penalized
        conditional mode is unique (canonical links, and ``log_concave_links``)."""
        return self.canonical or self.link.name in self.log_concave_links

    def __repr__(self) -> str:
        return f"{self.name}(link={self.link.name!r})"


# ---- helpers for concrete families ---------------------------------------


def xlogy_ratio(y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """y log(y / mu) with 0 log 0 = 0."""
    return special.xlogy(y, y) - special.xlogy(y, mu)


def check_counts(y: np.ndarray, what: str) -> None:
    """Raise a DataError unless ``y`` holds non-negative integer counts."""
    if np.any(y < 0):
        raise DataError(f"{what} response must be non-negative counts; found negative values")
    if np.any(np.abs(y - np.round(y)) > 1e-8):
        raise DataError(
            f"{what} response must be integer counts; found non-integer values "
            "(use a Gamma family for positive continuous data)"
        )


def check_positive(y: np.ndarray, what: str) -> None:
    """Raise a DataError unless every response is positive."""
    if np.any(y <= 0):
        raise DataError(f"{what} response must be positive; found zero or negative values")
