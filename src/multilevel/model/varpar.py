"""The random-effect covariance parameters as lme4 profiles them: SDs and correlations.

theta fills the lower-triangular relative covariance factors ``T`` of the
grouping blocks (:class:`~multilevel.model.spec.ThetaMap`). A profile (and an
interval) is drawn on the scale users read instead: per grouping block the
covariance ``s^2 T T'`` as standard deviations and correlations, one of them per
element of theta and in theta's order (a diagonal element gives the SD of its
column, an off-diagonal one the correlation of its row and column), with ``s``
the residual SD of a linear mixed model or 1 for a GLMM. The names are lme4's
``confint(..., oldNames = FALSE)`` names: ``sd_(Intercept)|Subject``,
``cor_Days.(Intercept)|Subject``.

Examples
--------
>>> import numpy as np
>>> from multilevel.datasets import load_dataset
>>> from multilevel.model.design import build_model
>>> spec, _ = build_model("Reaction ~ Days + (Days | Subject)", load_dataset("sleepstudy"))
>>> vp = VarParams.of(spec)
>>> vp.names
('sd_(Intercept)|Subject', 'cor_Days.(Intercept)|Subject', 'sd_Days|Subject')
>>> v = vp.from_theta(np.array([0.9, 0.1, 0.2]), 25.0)
>>> bool(np.allclose(vp.to_theta(v, 25.0), [0.9, 0.1, 0.2]))
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .spec import ModelSpec


def lme4_column(name: str) -> str:
    """A random-effect column as lme4 names it (formulaic's ``Intercept`` is ``(Intercept)``)."""
    return "(Intercept)" if name == "Intercept" else name


def _psd_cholesky(R: np.ndarray) -> np.ndarray | None:
    """Lower factor of a positive semi-definite correlation matrix (a zero pivot gives
    a zero column, as at a correlation of +-1), None where R is indefinite."""
    q = R.shape[0]
    L = np.zeros_like(R)
    for j in range(q):
        d = R[j, j] - float(L[j, :j] @ L[j, :j])
        if d < -1e-12:
            return None
        if d <= 1e-14:
            rest = R[j + 1 :, j] - L[j + 1 :, :j] @ L[j, :j]
            if np.any(np.abs(rest) > 1e-7):
                return None
            continue
        L[j, j] = math.sqrt(d)
        L[j + 1 :, j] = (R[j + 1 :, j] - L[j + 1 :, :j] @ L[j, :j]) / L[j, j]
    return L


@dataclass(frozen=True)
class VarParams:
    """SDs and correlations of every grouping block, in theta's order.

    ``is_sd[i]``: element i is an SD (a diagonal element of theta), else a
    correlation. ``lower`` / ``upper``: 0 and inf for an SD, -1 and 1 for a
    correlation.
    """

    spec: ModelSpec
    names: tuple[str, ...]
    is_sd: np.ndarray

    @classmethod
    def of(cls, spec: ModelSpec) -> VarParams:
        tm = spec.theta_map
        names = []
        for b, r, c in zip(tm.block.tolist(), tm.row.tolist(), tm.col.tolist()):
            g = spec.groupings[b]
            cols = [lme4_column(x) for x in g.columns]
            if r == c:
                names.append(f"sd_{cols[r]}|{g.name}")
            else:
                names.append(f"cor_{cols[r]}.{cols[c]}|{g.name}")
        return cls(spec, tuple(names), np.asarray(tm.row == tm.col))

    @property
    def size(self) -> int:
        return int(self.is_sd.size)

    @property
    def lower(self) -> np.ndarray:
        return np.where(self.is_sd, 0.0, -1.0)

    @property
    def upper(self) -> np.ndarray:
        return np.where(self.is_sd, np.inf, 1.0)

    @property
    def scalar(self) -> bool:
        """Every block is one column (no correlations): theta is the SDs over ``s``."""
        return all(q == 1 for q in self.spec.block_qs)

    def from_theta(self, theta: np.ndarray, scale: float = 1.0) -> np.ndarray:
        """SDs and correlations of ``scale^2 T T'`` (a correlation with a zero SD is 0)."""
        theta = np.asarray(theta, dtype=float)
        if self.scalar:
            return scale * np.abs(theta)
        tm = self.spec.theta_map
        out = np.empty(theta.size)
        for b, T in enumerate(self.spec.templates(theta)):
            S = T @ T.T
            sd = np.sqrt(np.diag(S))
            idx = np.flatnonzero(tm.block == b)
            for i in idx:
                r, c = tm.row[i], tm.col[i]
                if r == c:
                    out[i] = scale * sd[r]
                else:
                    den = sd[r] * sd[c]
                    out[i] = S[r, c] / den if den > 0 else 0.0
        return out

    def to_theta(self, v: np.ndarray, scale: float = 1.0) -> np.ndarray | None:
        """theta from SDs and correlations; None where the correlations of a block are not
        a positive semi-definite matrix."""
        v = np.asarray(v, dtype=float)
        if self.scalar:
            return v / scale
        tm = self.spec.theta_map
        theta = np.empty(v.size)
        for b, q in enumerate(self.spec.block_qs):
            idx = np.flatnonzero(tm.block == b)
            rows, cols = tm.row[idx], tm.col[idx]
            diag = rows == cols
            rho = np.zeros(q)
            rho[rows[diag]] = v[idx[diag]] / scale
            if q == 1:
                theta[idx] = rho[0]
                continue
            R = np.eye(q)
            R[rows[~diag], cols[~diag]] = v[idx[~diag]]
            R[cols[~diag], rows[~diag]] = v[idx[~diag]]
            if q == 2:
                c = R[1, 0]
                if abs(c) > 1.0:
                    return None
                L = np.array([[1.0, 0.0], [c, math.sqrt(max(1.0 - c * c, 0.0))]])
            else:
                Lp = _psd_cholesky(R)
                if Lp is None:
                    return None
                L = Lp
            T = rho[:, None] * L
            theta[idx] = T[rows, cols]
        return theta
