"""The profiled LMM criterion of many (theta, response) pairs in one set of array operations.

A refit with a new response changes only the response's cross-products
``Z'Wy``, ``X'Wy`` and ``y'Wy``; everything else in the blocked system
(:mod:`multilevel.linalg.crossprod`) is shared. :class:`BatchCriterion` keeps the
shared part once and the responses' parts as arrays ``(K, ...)``, and evaluates
the criterion for B points ``theta_b`` of responses ``k_b`` at once: the first
block's per-level ``q1 x q1`` factors and Schur weights for all points together,
the Schur complement of the dense rest ``[Z_2 .. Z_K, X, y]`` as matrix products
with precomputed per-level outer products, and the small dense factors by one
batched Cholesky. That is what makes thousands of fits a second possible: the
parametric bootstrap, many responses on one design, and the finite-difference
Newton steps of :mod:`multilevel.optim.newton`, which ask for many points at once.

It applies to systems whose dense rest is small (``Layout.m <= MAX_DENSE``); the
single-fit factor of :mod:`multilevel.linalg.numpy_backend` covers every layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..linalg.criteria import LOG_2PI
from ..linalg.crossprod import CrossProductBuilder, CrossProducts, as_dense
from ..model.spec import ModelSpec

#: largest dense rest (other random effects + fixed effects + response) batched
MAX_DENSE = 40
#: most batch elements evaluated in one set of operations (bounds memory)
CHUNK = 20_000


def batchable(cp: CrossProducts) -> bool:
    """Whether the batched criterion applies to these cross-products."""
    lay = cp.layout
    return lay.m <= MAX_DENSE and lay.n1 * lay.q1 * lay.q1 * (lay.m - 1) ** 2 <= 5_000_000


@dataclass(frozen=True)
class Responses:
    """Cross-products of K responses with the design (offset subtracted, weighted):
    ``a1`` (K, n1, q1) with the first block, ``rest`` (K, m - 1) with ``[Z_2 .. X]``,
    ``yy`` (K,)."""

    a1: np.ndarray
    rest: np.ndarray
    yy: np.ndarray

    @property
    def size(self) -> int:
        return int(self.yy.shape[0])


def response_products(design: Any, n_levels: list[int], Y: np.ndarray) -> Responses:
    """Cross-products of the columns of ``Y`` (n, K) with the design's ``[Z X]``."""
    Y = np.asarray(Y, dtype=float)
    if Y.ndim == 1:
        Y = Y[:, None]
    if design.offset is not None:
        Y = Y - design.offset[:, None]
    groups = [(g.codes, g.values) for g in design.groups]
    b = CrossProductBuilder(groups, n_levels, design.X)
    lay = b.layout
    w = design.residual_weights
    Yw = Y if w is None else Y * w[:, None]
    yy = np.einsum("ik,ik->k", Y, Yw)
    n1, q1 = lay.n1, lay.q1
    a1 = np.empty((Y.shape[1], n1, q1))
    # Z1' W Y through a level indicator (n1, n): one matrix product per column of the block
    ind = np.zeros((n1, Y.shape[0]))
    rows = np.arange(Y.shape[0])
    for a in range(q1):
        ind[:] = 0.0
        ind[b.codes1, rows] = b.v1[:, a]
        a1[:, :, a] = (ind @ Yw).T
    parts = []
    if lay.mz:
        Z2 = np.zeros((Y.shape[0], lay.mz))
        np.add.at(Z2, (np.repeat(rows, b.zc.shape[1]), b.zc.ravel()), b.zv.ravel())
        parts.append(Z2.T @ Yw)
    parts.append(b.X.T @ Yw)
    rest = np.concatenate(parts, axis=0).T
    return Responses(a1=a1, rest=np.ascontiguousarray(rest), yy=yy)


@dataclass(frozen=True)
class BatchFactor:
    """The factor's summaries at B points: log-determinants, penalized RSS, and the
    dense factor ``LS`` (B, m, m) of ``[Z_2 .. X y]`` (lower)."""

    logdet_z: np.ndarray
    logdet_x: np.ndarray
    r2: np.ndarray
    LS: np.ndarray
    ok: np.ndarray  # the point's dense block was positive definite


class BatchCriterion:
    """Profiled REML / ML criterion of a model at B (theta, response) pairs.

    Examples
    --------
    >>> import numpy as np, multilevel
    >>> m = multilevel.fit("Reaction ~ Days + (Days | Subject)", multilevel.load_dataset("sleepstudy"))
    >>> bc = BatchCriterion(m.spec, m.objective.cp, reml=True,
    ...                     responses=response_products(m.design, [18], m.design.y))
    >>> bool(np.isclose(bc(m.theta[None], np.array([0]))[0], m.reml_criterion))
    True
    """

    def __init__(self, spec: ModelSpec, cp: CrossProducts, reml: bool, responses: Responses) -> None:
        lay = cp.layout
        self.spec, self.layout, self.reml = spec, lay, reml
        self.n, self.p = float(cp.n), lay.p
        self.slw = cp.sum_log_weights
        self.sigma_fixed = 1.0 if spec.parsed.se is not None else None
        self.responses = responses
        n1, q1, m = lay.n1, lay.q1, lay.m
        self.A11 = cp.A11
        A1R = as_dense(cp.A1R).reshape(n1, q1, m)
        self.A1X = np.ascontiguousarray(A1R[:, :, : m - 1])  # (n1, q1, m - 1): [Z_2 .. X]
        self.ARR = np.ascontiguousarray(cp.ARR[: m - 1, : m - 1])
        # per-level outer products: S_XX = W_flat @ Q, W the Schur weights (B, n1 q1 q1)
        self.Q = np.einsum("lai,lbj->labij", self.A1X, self.A1X).reshape(n1 * q1 * q1, (m - 1) ** 2)
        tm = spec.theta_map
        self.first = np.flatnonzero(tm.block == 0)
        self.rc1 = (tm.row[self.first], tm.col[self.first])
        self._lambda_places = self._rest_places(spec)

    def _rest_places(self, spec: ModelSpec) -> list[tuple[int, np.ndarray]]:
        """For each theta element of the rest blocks, its flat positions in ``Lt`` (m, m)."""
        lay, tm, m = self.layout, spec.theta_map, self.layout.m
        out, start = [], 0
        for k, (nl, q) in enumerate(lay.rest, start=1):
            for i in np.flatnonzero(tm.block == k):
                base = start + np.arange(nl) * q
                out.append((int(i), (base + tm.row[i]) * m + base + tm.col[i]))
            start += nl * q
        return out

    # ---- the factor ----------------------------------------------------
    def _first_block(self, Th: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Schur weights ``W = T (T'A11 T + I)^{-1} T'`` (B, n1, q1, q1) and log det."""
        B, q1 = Th.shape[0], self.layout.q1
        if q1 == 1:
            t2 = Th[:, self.first[0]] ** 2
            d = t2[:, None] * self.A11[None, :, 0, 0] + 1.0
            return (t2[:, None] / d)[:, :, None, None], np.log(d).sum(axis=1)
        T = np.zeros((B, q1, q1))
        T[:, self.rc1[0], self.rc1[1]] = Th[:, self.first]
        if q1 == 2:
            return _first_block_2(T, self.A11)
        Tt = np.swapaxes(T, 1, 2)
        M = Tt[:, None] @ self.A11[None] @ T[:, None]  # (B, n1, q1, q1)
        idx = np.arange(q1)
        M[..., idx, idx] += 1.0
        Minv = np.linalg.inv(M)
        logdet = np.linalg.slogdet(M)[1].sum(axis=1)
        return T[:, None] @ Minv @ Tt[:, None], logdet

    def factor(self, Th: np.ndarray, which: np.ndarray) -> BatchFactor:
        """Factor at points ``Th`` (B, k) for responses ``which`` (B,)."""
        lay = self.layout
        n1, q1, m, mz = lay.n1, lay.q1, lay.m, lay.mz
        B = Th.shape[0]
        W, logdet1 = self._first_block(Th)
        R = self.responses
        a1 = R.a1[which]  # (B, n1, q1)
        Wa = np.einsum("blij,blj->bli", W, a1) if q1 > 1 else W[:, :, 0, 0, None] * a1
        G = np.empty((B, m, m))
        G[:, : m - 1, : m - 1] = self.ARR - (W.reshape(B, n1 * q1 * q1) @ self.Q).reshape(B, m - 1, m - 1)
        gy = R.rest[which] - Wa.reshape(B, n1 * q1) @ self.A1X.reshape(n1 * q1, m - 1)
        G[:, : m - 1, m - 1] = gy
        G[:, m - 1, : m - 1] = gy
        G[:, m - 1, m - 1] = R.yy[which] - np.einsum("bli,bli->b", Wa, a1)
        if mz:
            Lt = np.zeros((B, m * m))
            Lt[:, np.arange(mz, m) * (m + 1)] = 1.0
            for i, pos in self._lambda_places:
                Lt[:, pos] = Th[:, i, None]
            L3 = Lt.reshape(B, m, m)
            G = np.swapaxes(L3, 1, 2) @ G @ L3
            z = np.arange(mz)
            G[:, z, z] += 1.0
        LS, ok = _cholesky(G)
        d = np.diagonal(LS, axis1=1, axis2=2)
        with np.errstate(divide="ignore", invalid="ignore"):
            logd = np.log(d[:, : m - 1])
        return BatchFactor(
            logdet_z=logdet1 + 2.0 * logd[:, :mz].sum(axis=1),
            logdet_x=2.0 * logd[:, mz:].sum(axis=1),
            r2=d[:, -1] ** 2,
            LS=LS,
            ok=ok,
        )

    # ---- criteria and estimates -----------------------------------------
    def criterion(self, f: BatchFactor) -> np.ndarray:
        nu = self.n - self.p if self.reml else self.n
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.sigma_fixed is not None:
                dev = f.logdet_z + f.r2 + nu * LOG_2PI - self.slw
            else:
                dev = f.logdet_z + nu * (1.0 + LOG_2PI + np.log(f.r2 / nu)) - self.slw
        if self.reml:
            dev = dev + f.logdet_x
        return np.where(f.ok & np.isfinite(dev), dev, np.inf)

    def __call__(self, Th: np.ndarray, which: np.ndarray) -> np.ndarray:
        """The criterion at every point (inf where the factor fails), in chunks."""
        Th = np.atleast_2d(np.asarray(Th, dtype=float))
        out = np.empty(Th.shape[0])
        for s in range(0, Th.shape[0], CHUNK):
            sl = slice(s, s + CHUNK)
            out[sl] = self.criterion(self.factor(Th[sl], which[sl]))
        return out

    def sigma(self, f: BatchFactor) -> np.ndarray:
        if self.sigma_fixed is not None:
            return np.full(f.r2.shape, self.sigma_fixed)
        return np.sqrt(f.r2 / (self.n - self.p if self.reml else self.n))

    def estimates(self, Th: np.ndarray, which: np.ndarray) -> dict[str, np.ndarray]:
        """beta (B, p), sigma (B,), vcov(beta) (B, p, p) and the criterion at each point."""
        lay = self.layout
        mz, p = lay.mz, lay.p
        f = self.factor(np.atleast_2d(Th), which)
        LXX = f.LS[:, mz : mz + p, mz : mz + p]
        c = f.LS[:, -1, mz : mz + p]
        Linv = np.linalg.inv(LXX)  # lower triangular
        beta = np.einsum("bji,bj->bi", Linv, c)
        sigma = self.sigma(f)
        vcov = sigma[:, None, None] ** 2 * (np.swapaxes(Linv, 1, 2) @ Linv)
        return {"beta": beta, "sigma": sigma, "vcov": vcov, "criterion": self.criterion(f)}


def _first_block_2(T: np.ndarray, A11: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:meth:`BatchCriterion._first_block` for two columns, elementwise over (point, level)
    (batched 2 x 2 matrix products cost far more than the arithmetic)."""
    t0, t1, t2 = (T[:, i, j, None] for i, j in ((0, 0), (1, 0), (1, 1)))
    a, b, c = A11[None, :, 0, 0], A11[None, :, 1, 0], A11[None, :, 1, 1]
    # M = T' A T + I for T = [[t0, 0], [t1, t2]]
    bc = b * t0 + c * t1
    m00 = t0 * (a * t0 + b * t1) + t1 * bc + 1.0
    m01 = t2 * bc
    m11 = c * t2 * t2 + 1.0
    det = m00 * m11 - m01 * m01
    i00, i01, i11 = m11 / det, -m01 / det, m00 / det
    W = np.empty((*det.shape, 2, 2))
    W[..., 0, 0] = t0 * t0 * i00
    W[..., 0, 1] = W[..., 1, 0] = t0 * (t1 * i00 + t2 * i01)
    W[..., 1, 1] = t1 * t1 * i00 + 2.0 * t1 * t2 * i01 + t2 * t2 * i11
    return W, np.log(det).sum(axis=1)


def _cholesky(G: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched lower Cholesky; points whose matrix is not positive definite get NaN."""
    try:
        return np.linalg.cholesky(G), np.ones(G.shape[0], dtype=bool)
    except np.linalg.LinAlgError:
        pass
    L = np.full_like(G, math.nan)
    ok = np.zeros(G.shape[0], dtype=bool)
    for b in range(G.shape[0]):
        try:
            L[b] = np.linalg.cholesky(G[b])
            ok[b] = True
        except np.linalg.LinAlgError:
            continue
    return L, ok
