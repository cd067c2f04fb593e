"""Derivatives of a family's log density in the linear predictor eta.

The observed-information Laplace approximation weights each observation by
``-d^2 log p(y | eta) / d eta^2`` (the *observed* weights) where lme4 uses the
expected (Fisher) weights ``w mu_eta^2 / V(mu)``; its gradient needs one
derivative more. With ``l_k = d^k log p / d mu^k`` (:meth:`Family.dlogpdf_dmu`)
and ``m_k = d^k mu / d eta^k`` (the link's ``mu_eta``, ``mu_eta2``, ``mu_eta3``):

    d log p / d eta     = l_1 m_1
    d^2 log p / d eta^2 = l_2 m_1^2 + l_1 m_2
    d^3 log p / d eta^3 = l_3 m_1^3 + 3 l_2 m_1 m_2 + l_1 m_3

For a canonical link the observed and expected weights agree (``l_1 m_2`` and the
part of ``l_2`` that depends on y cancel).

>>> import numpy as np
>>> from multilevel.family import get_family
>>> fam = get_family("Gamma", "log")
>>> y, eta = np.array([2.0]), np.array([0.0])
>>> d = eta_derivatives(fam, y, eta, fam.link.inverse(eta), np.ones(1), 0.5)
>>> float(d.hessian[0])  # (w / phi) y / mu; the expected weight is w / phi = 2
4.0
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .base import Family


@dataclass(frozen=True)
class EtaDerivatives:
    """Per-observation derivatives of ``log p(y | eta)`` at eta."""

    mu_eta: np.ndarray  # d mu / d eta
    score: np.ndarray  # d log p / d eta
    hessian: np.ndarray  # -d^2 log p / d eta^2: the observed weights
    dhessian: np.ndarray | None  # d hessian / d eta = -d^3 log p / d eta^3 (if asked)


def eta_derivatives(
    family: Family,
    y: np.ndarray,
    eta: np.ndarray,
    mu: np.ndarray,
    w: np.ndarray,
    disp: float,
    *,
    third: bool = False,
) -> EtaDerivatives:
    """Score, observed weights and (``third=True``) their derivative in eta."""
    link = family.link
    m1, m2 = link.mu_eta(eta), link.mu_eta2(eta)
    ls = family.dlogpdf_dmu(y, mu, w, disp, order=3 if third else 2)
    score = ls[0] * m1
    hessian = -(ls[1] * m1 * m1 + ls[0] * m2)
    dhessian = None
    if third:
        m3 = link.mu_eta3(eta)
        dhessian = -(ls[2] * m1**3 + 3.0 * ls[1] * m1 * m2 + ls[0] * m3)
    return EtaDerivatives(m1, score, hessian, dhessian)


def eta_derivatives_ddisp(
    family: Family, y: np.ndarray, eta: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float
) -> tuple[np.ndarray, np.ndarray]:
    """d / d dispersion of the score and of the observed weights (families with one)."""
    link = family.link
    m1, m2 = link.mu_eta(eta), link.mu_eta2(eta)
    l1d, l2d = family.dlogpdf_dmu_ddisp(y, mu, w, disp)
    return l1d * m1, -(l2d * m1 * m1 + l1d * m2)


def observed_weights(
    family: Family, y: np.ndarray, eta: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float
) -> np.ndarray:
    """``-d^2 log p(y | eta) / d eta^2`` per observation (negative where log p is convex)."""
    return eta_derivatives(family, y, eta, mu, w, disp).hessian


def has_third_derivatives(family: Family) -> bool:
    """Whether the family and link give what :func:`eta_derivatives` needs with ``third=True``
    (and, for a family with a dispersion, :func:`eta_derivatives_ddisp`)."""
    one = np.ones(1)
    try:
        family.link.mu_eta3(one)
        family.d2variance(one, 1.0)
        if family.has_dispersion:
            family.d2variance_dmu_ddisp(one, 1.0)
    except NotImplementedError:
        return False
    return True
