"""Estimates from a blocked factor: beta, spherical u, random effects b = Lambda u,
their conditional variances, and vcov(beta), as NumPy arrays whatever the
objective's backend (:mod:`multilevel.linalg.factor`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .objective import Factor, LmmObjective


@dataclass(frozen=True)
class Solution:
    beta: np.ndarray
    u: list[np.ndarray]  # per grouping block, (n_levels, q)
    b: list[np.ndarray]  # per grouping block, (n_levels, q)
    sigma: float


def solve(obj: LmmObjective, f: Factor) -> Solution:
    """Fixed effects and conditional modes at the factor's theta."""
    s = obj.linalg("solve")(obj.system, f)
    return Solution(
        beta=np.asarray(s.beta),
        u=[np.asarray(u) for u in s.u],
        b=[np.asarray(b) for b in s.b],
        sigma=float(obj.sigma(f)),
    )


def vcov_beta(obj: LmmObjective, f: Factor, sigma: float) -> np.ndarray:
    """``sigma^2 (R_X R_X')^{-1}``: covariance of the fixed effects given theta."""
    return np.asarray(obj.linalg("vcov_beta")(obj.system, f, sigma))


def conditional_variances(obj: LmmObjective, f: Factor, sigma: float) -> list[np.ndarray]:
    """Diagonal blocks of ``Var(b | y) = sigma^2 Lambda (L_Z L_Z')^{-1} Lambda'``.

    One (n_levels, q, q) array per grouping block, as lme4's ``condVar``
    (beta held at its estimate).
    """
    return [np.asarray(c) for c in obj.linalg("conditional_variances")(obj.system, f, sigma)]
