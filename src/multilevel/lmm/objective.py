"""The profiled REML / ML criterion of a linear mixed model as a function of theta.

Reads only the cross-products (:mod:`multilevel.linalg.crossprod`), so an evaluation
costs nothing that grows with the number of rows:

    objective(theta) = criterion(factor(theta))

with ``factor`` the blocked Cholesky of ``[Lambda'Z'Z Lambda + I, ...; X'Z Lambda,
X'X, ...; y'Z Lambda, y'X, y'y]`` and, for ML, ``d = log|L_Z|^2 + n (1 + log(2 pi
r^2 / n))``, for REML ``d = log|L_Z|^2 + log|R_X|^2 + (n-p)(1 + log(2 pi r^2 / (n-p)))``
(Bates et al. 2015, eqs. 34 and 41), less ``sum(log w)`` for prior weights.

With known residual standard errors (``y | se(s) ~ ...``, brms's syntax) the
weights are ``1 / s^2`` and the residual scale is fixed at 1 rather than
profiled: the criterion is :meth:`LmmObjective.deviance_at` with ``sigma = 1``
and theta is on the absolute scale of the random-effect SDs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..linalg.blocked import (
    DenseSchur,
    PairSchur,
    SchurPattern,
    blockdiag_factor,
    dense_cholesky,
    scale_rest,
    schur_update,
)
from ..linalg.crossprod import CrossProducts
from ..model.spec import ModelSpec

LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class Factor:
    """The blocked Cholesky factor at one theta."""

    theta: np.ndarray
    templates: list[np.ndarray]
    L1: np.ndarray  # (n1, q1, q1) factors of the first block
    W1: np.ndarray  # (n1, q1, q1) Schur weights T (L L')^{-1} T'
    LS: np.ndarray  # (m, m) lower factor of the dense rest, Fortran order
    logdet_z: float  # log det(Lambda'Z'Z Lambda + I)
    logdet_x: float  # log det(R_X R_X')
    r2: float  # penalized weighted residual sum of squares


class LmmObjective:
    """Callable profiled deviance ``theta -> REML criterion or -2 log-likelihood``.

    Examples
    --------
    >>> from multilevel.datasets import load_dataset
    >>> from multilevel.model.design import build_model
    >>> from multilevel.linalg.crossprod import compute_crossprods
    >>> spec, d = build_model("Yield ~ 1 + (1 | Batch)", load_dataset("Dyestuff"))
    >>> obj = LmmObjective(spec, compute_crossprods(d, [6]), reml=True)
    >>> round(obj([0.8]), 3) > 0
    True
    """

    def __init__(
        self,
        spec: ModelSpec,
        cp: CrossProducts,
        reml: bool = True,
        pattern: SchurPattern | DenseSchur | PairSchur | None = None,
    ) -> None:
        self.spec = spec
        self.cp = cp
        self.reml = reml
        # known residual SEs: the residual scale is 1, not a parameter
        self.sigma_fixed: float | None = 1.0 if spec.parsed.se is not None else None
        self.layout = cp.layout
        # ``pattern``: a precomputed form of the Schur update (PIRLS reuses its structure)
        self.pattern = schur_update(cp.A1R, cp.layout.n1, cp.layout.q1) if pattern is None else pattern
        self.z_levels = [g.n_levels for g in spec.groupings[1:]]
        self._needs_full = any(g.q > 1 for g in spec.groupings[1:])
        if not isinstance(self.pattern, DenseSchur):
            self._ti, self._tj = np.divmod(self.pattern.targets, cp.layout.m)

    @property
    def n(self) -> int:
        return self.cp.n

    @property
    def p(self) -> int:
        return self.layout.p

    def factor(self, theta: np.ndarray) -> Factor:
        """Blocked Cholesky at ``theta``; raises ``LinAlgError`` if not positive definite."""
        theta = np.asarray(theta, dtype=float)
        Ts = self.spec.templates(theta)
        L1, W1, logdet1 = blockdiag_factor(self.cp.A11, Ts[0])
        mz = self.layout.mz
        pattern = self.pattern
        update = pattern.update(W1)
        if isinstance(pattern, DenseSchur):
            G = self.cp.ARR - update
            if self._needs_full:
                scale_rest(G, Ts[1:], self.z_levels)
            elif mz:
                s = self._rest_scale(Ts)
                G *= s[:, None]
                G *= s
        elif not self._needs_full and mz:
            # scalar templates in the rest: scale while copying, and scale the update
            s = self._rest_scale(Ts)
            G = np.multiply(self.cp.ARR, s[:, None], order="C")
            G *= s
            update *= s[self._ti] * s[self._tj]
            G.ravel()[pattern.targets] -= update
        else:
            G = self.cp.ARR.copy(order="C")
            G.ravel()[pattern.targets] -= update
            if self._needs_full:
                G = np.triu(G) + np.triu(G, 1).T
                scale_rest(G, Ts[1:], self.z_levels)
        if mz:
            idx = np.arange(mz)
            G[idx, idx] += 1.0
        LS = dense_cholesky(G)
        d = np.diagonal(LS)
        p = self.layout.p
        logd = np.log(d[: mz + p])
        logdet_z = logdet1 + 2.0 * float(logd[:mz].sum())
        logdet_x = 2.0 * float(logd[mz:].sum())
        return Factor(theta, Ts, L1, W1, LS, logdet_z, logdet_x, float(d[-1] ** 2))

    def _rest_scale(self, Ts: list[np.ndarray]) -> np.ndarray:
        """Diagonal of ``blockdiag(Lambda_2..K, I)`` when every template is 1 x 1."""
        s = np.ones(self.layout.m)
        start = 0
        for T, nl in zip(Ts[1:], self.z_levels):
            s[start : start + nl] = T[0, 0]
            start += nl
        return s

    def criterion(self, f: Factor, reml: bool | None = None) -> float:
        """Profiled deviance (REML criterion if ``reml``) from a factor."""
        reml = self.reml if reml is None else reml
        if self.sigma_fixed is not None:
            return self.deviance_at(f, self.sigma_fixed, reml)
        n, p = self.n, self.p
        nu = n - p if reml else n
        dev = f.logdet_z + nu * (1.0 + LOG_2PI + math.log(f.r2 / nu)) - self.cp.sum_log_weights
        if reml:
            dev += f.logdet_x
        return dev

    def deviance_at(self, f: Factor, sigma: float, reml: bool | None = None) -> float:
        """Deviance at (theta, sigma) with beta profiled: lmerTest's ``devfun_vp``."""
        reml = self.reml if reml is None else reml
        s2 = sigma * sigma
        nu = self.n - self.p if reml else self.n
        dev = f.logdet_z + f.r2 / s2 + nu * (LOG_2PI + math.log(s2)) - self.cp.sum_log_weights
        if reml:
            dev += f.logdet_x
        return dev

    def sigma(self, f: Factor) -> float:
        if self.sigma_fixed is not None:
            return self.sigma_fixed
        nu = self.n - self.p if self.reml else self.n
        return math.sqrt(f.r2 / nu)

    def __call__(self, theta: np.ndarray) -> float:
        try:
            return self.criterion(self.factor(theta))
        except np.linalg.LinAlgError:
            return math.inf
