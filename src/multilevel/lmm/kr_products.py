"""Products of ``V^{-1}`` with ``[Z X]`` from the blocked factor, for Kenward-Roger.

Kenward-Roger needs, for the linear covariance parameters ``s_i`` of
``V = sum_i s_i G_i`` (``G_i = Z E_i Z'`` for an element of a random-effect covariance
matrix, ``G = I`` for the residual variance),

    P_i = -X'V^{-1} G_i V^{-1} X,    Q_ij = X'V^{-1} G_i V^{-1} G_j V^{-1} X,
    K_ij = tr(V^{-1} G_i V^{-1} G_j),

which pbkrtest computes with ``V`` as an n x n matrix. Here no n x n (nor q x q)
matrix is formed. With ``V = sigma^2 Vt``, ``Vt = Z Lambda Lambda' Z' + I`` (rows
scaled by the square roots of the prior weights), Woodbury in two stages, the first
grouping block (block diagonal) and then the dense rest, gives

    [Z X]' Vt^{-1} [Z X] = C' - U'U,

where ``C'`` is the cross-product matrix with the first block eliminated (block
diagonal in the first block, sparse between it and the rest, dense in the rest) and
``U = L_Z^{-1} Lambda_R' C'_{R.}`` has one row per random effect of the rest (``L_Z``:
the rest's factor). With ``M = Lambda'Z'Z Lambda + I`` and ``J = M^{-1} Lambda' [Z X]'[Z X]``
(so that ``Vt^{-1}[Z X] = [Z X] - Z Lambda J``), also

    [Z X]' Vt^{-2} [Z X] = C' - U'U - J'J,    tr(Vt^{-2}) = n - q + ||M^{-1}||_F^2,

and ``X'Vt^{-3}X`` is the same quadratic form at ``Vt^{-1}X``'s coefficients. Traces
over the first block's square part use ``tr(A'B) = sum(A * B)`` on its block diagonal
and low-rank parts, so the cost is ``O(n1 q1 mz^2 + mz^3)`` and the memory
``O(mz (q + p))``, with ``n1 q1`` the first block's and ``mz`` the rest's random effects.
This module is a new primitive on the factor's fields (``L1``, ``W1``, ``LS``,
``templates``) and the cross-products; it does not change them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.linalg import solve_triangular

from .objective import Factor, LmmObjective


@dataclass(frozen=True)
class CovParameter:
    """One linear covariance parameter: element (row, col) of a grouping block's
    covariance matrix (every level alike), or the residual variance (block -1)."""

    block: int
    row: int
    col: int

    @property
    def pairs(self) -> tuple[tuple[int, int], ...]:
        """``E = sum of J_a J_b'`` over these component pairs (both orders off the diagonal)."""
        if self.row == self.col:
            return ((self.row, self.row),)
        return ((self.row, self.col), (self.col, self.row))


def covariance_parameters(obj: LmmObjective) -> list[CovParameter]:
    """The parameters of pbkrtest's ``SigmaG``: every element of theta's template positions
    as a covariance element, then the residual variance (unless known SEs fix it).

    Examples
    --------
    >>> import multilevel
    >>> m = multilevel.fit("Reaction ~ Days + (Days | Subject)", multilevel.load_dataset("sleepstudy"))
    >>> [(p.block, p.row, p.col) for p in covariance_parameters(m.objective)]
    [(0, 0, 0), (0, 1, 0), (0, 1, 1), (-1, 0, 0)]
    """
    tm = obj.spec.theta_map
    out = [CovParameter(int(b), int(r), int(c)) for b, r, c in zip(tm.block, tm.row, tm.col)]
    if obj.sigma_fixed is None:
        out.append(CovParameter(-1, 0, 0))
    return out


@dataclass(frozen=True)
class _Blocks:
    """Where each grouping block's random effects sit among all q of them."""

    offsets: tuple[int, ...]
    n_levels: tuple[int, ...]
    qs: tuple[int, ...]

    def index(self, k: int, a: int) -> np.ndarray:
        """Positions of component ``a`` of block ``k`` over its levels."""
        return self.offsets[k] + np.arange(self.n_levels[k]) * self.qs[k] + a

    def span(self, k: int) -> slice:
        return slice(self.offsets[k], self.offsets[k] + self.n_levels[k] * self.qs[k])


def _blocks(obj: LmmObjective) -> _Blocks:
    gs = obj.spec.groupings
    offsets, start = [], 0
    for g in gs:
        offsets.append(start)
        start += g.size
    return _Blocks(tuple(offsets), tuple(g.n_levels for g in gs), tuple(g.q for g in gs))


def _left_templates(M: np.ndarray, Ts: list[np.ndarray], sizes: list[int], transpose: bool) -> np.ndarray:
    """``Lambda' M`` (``transpose``) or ``Lambda M`` for consecutive blocks of rows."""
    out = np.array(M, dtype=float, copy=True)
    start = 0
    for T, nl in zip(Ts, sizes):
        q = T.shape[0]
        sl = slice(start, start + nl * q)
        rows = out[sl].reshape(nl, q, -1)
        A = T.T if transpose else T
        out[sl] = np.einsum("ab,lbj->laj", A, rows).reshape(nl * q, -1)
        start += nl * q
    return out


def _blockdiag(B: np.ndarray) -> sp.csr_matrix:
    """Sparse block-diagonal matrix of a batch (n, q, q)."""
    n, q, _ = B.shape
    return sp.bsr_matrix((B, np.arange(n), np.arange(n + 1)), shape=(n * q, n * q)).tocsr()


def _times_blockdiag(B: np.ndarray, A: np.ndarray | sp.spmatrix) -> np.ndarray:
    """``blockdiag(B) @ A`` as a dense array (A dense or sparse, n q rows)."""
    n, q, _ = B.shape
    if sp.issparse(A):
        return np.asarray((_blockdiag(B) @ A).toarray())
    return (B @ np.asarray(A).reshape(n, q, -1)).reshape(n * q, -1)


@dataclass(frozen=True)
class WoodburyParts:
    """``[Z X]'Vt^{-1}[Z X]`` and ``J`` in the blocked form described in the module doc.

    Coordinates: the first block's random effects (``n1 q1``), the rest's (``mz``), then X (p).
    """

    C11: np.ndarray  # (n1, q1, q1) first-block part of C' (block diagonal)
    C1R: np.ndarray  # (n1 q1, mz + p) C' between the first block and [Z_R, X]
    CRR: np.ndarray  # (mz + p, mz + p)
    U: np.ndarray  # (mz, n1 q1 + mz + p)
    JR: np.ndarray  # (mz, n1 q1 + mz + p): the rest's rows of J
    B1: np.ndarray  # (n1, q1, q1): J's first rows at the first block's columns, block diagonal part
    Hm: np.ndarray  # (n1 q1, mz): J_1 = [B1 | Y1 A1R] - Hm J_R
    J1R: np.ndarray  # (n1 q1, mz + p): J's first rows at the [Z_R, X] columns
    M11inv: np.ndarray  # (n1, q1, q1)
    LZ: np.ndarray  # (mz, mz) the rest's factor


def woodbury_parts(obj: LmmObjective, f: Factor) -> WoodburyParts:
    """The blocked pieces of ``[Z X]'Vt^{-1}[Z X]`` and of ``J`` at the factor's theta.

    Examples
    --------
    >>> import multilevel
    >>> m = multilevel.fit("diameter ~ 1 + (1 | plate) + (1 | sample)", multilevel.load_dataset("Penicillin"))
    >>> woodbury_parts(m.objective, m.factor).U.shape  # 6 samples in the dense rest
    (6, 31)
    """
    lay, cp = obj.layout, obj.cp
    n1, q1, mz, p = lay.n1, lay.q1, lay.mz, lay.p
    r = mz + p
    T1 = f.templates[0]
    A1R = cp.A1R[:, :r] if sp.issparse(cp.A1R) else np.asarray(cp.A1R)[:, :r]
    L1inv = np.linalg.inv(f.L1)
    M11inv = L1inv.transpose(0, 2, 1) @ L1inv
    W1 = T1[None] @ M11inv @ T1.T[None]  # the Schur weights T1 (L1 L1')^{-1} T1' per level
    D1 = np.eye(q1)[None] - cp.A11 @ W1  # I - A11 W1 per level
    C11 = cp.A11 @ D1.transpose(0, 2, 1)  # A11 - A11 W1 A11 (symmetric)
    C11 = 0.5 * (C11 + C11.transpose(0, 2, 1))
    C1R = _times_blockdiag(D1, A1R)
    WA = _times_blockdiag(W1, A1R)
    A1Rd = np.asarray(A1R.toarray()) if sp.issparse(A1R) else np.asarray(A1R)  # type: ignore[union-attr]
    CRR = cp.ARR[:r, :r] - A1Rd.T @ WA
    CRR = 0.5 * (CRR + CRR.T)
    Y1 = M11inv @ T1.T[None]  # M11^{-1} Lambda_1' per level
    B1 = Y1 @ cp.A11
    LZ = np.asarray(f.LS[:mz, :mz])
    sizes = [nl for nl, _ in lay.rest]
    rest_T = list(f.templates[1:])
    N = n1 * q1 + r
    if mz:
        CR = np.hstack([C1R[:, :mz].T, CRR[:mz, :]])
        U = solve_triangular(LZ, _left_templates(CR, rest_T, sizes, True), lower=True)
        JR = solve_triangular(LZ, U, lower=True, trans="T")
        Hm = _left_templates(_times_blockdiag(Y1, A1R[:, :mz]).T, rest_T, sizes, True).T
    else:
        U = JR = np.zeros((0, N))
        Hm = np.zeros((n1 * q1, 0))
    J1R = _times_blockdiag(Y1, A1R) - Hm @ JR[:, n1 * q1 :]
    return WoodburyParts(C11, C1R, CRR, U, JR, B1, Hm, J1R, M11inv, LZ)


def _level_dots(A: np.ndarray, B: np.ndarray, n: int, q: int) -> np.ndarray:
    """``A[:, (l, a)] . B[:, (l, b)]`` for every level l: (n, q, q), columns level-major."""
    return np.einsum("mla,mlb->lab", A.reshape(-1, n, q), B.reshape(-1, n, q))


def _diag_blocks(S: np.ndarray, n: int, q: int) -> np.ndarray:
    """The per-level (q, q) diagonal blocks of a square (n q, n q) array."""
    return np.einsum("lalb->lab", S.reshape(n, q, n, q))


class _Algebra:
    """The quantities of :func:`kr_products` from the Woodbury parts (sigma-free)."""

    def __init__(self, obj: LmmObjective, f: Factor) -> None:
        self.obj, self.f = obj, f
        self.w = w = woodbury_parts(obj, f)
        lay = obj.layout
        self.n1, self.q1, self.mz, self.p = lay.n1, lay.q1, lay.mz, lay.p
        self.N1 = n1q1 = lay.n1 * lay.q1
        self.blocks = _blocks(obj)
        mz = self.mz
        self.U1, self.UR, self.UX = w.U[:, :n1q1], w.U[:, n1q1 : n1q1 + mz], w.U[:, n1q1 + mz :]
        self.S1R = w.C1R[:, :mz] - self.U1.T @ self.UR
        self.SRR = w.CRR[:mz, :mz] - self.UR.T @ self.UR
        self.K = np.vstack([w.C1R[:, mz:] - self.U1.T @ self.UX, w.CRR[:mz, mz:] - self.UR.T @ self.UX])
        self.XX = w.CRR[mz:, mz:] - self.UX.T @ self.UX
        self.JR1 = w.JR[:, :n1q1]
        self.JX = np.vstack([w.J1R[:, mz:], w.JR[:, n1q1 + mz :]])
        self.HH = w.Hm.T @ w.Hm
        self.d1 = _level_dots(self.U1, self.U1, self.n1, self.q1)  # U1 dots per level
        self._gram: dict[tuple[int, int], np.ndarray] = {}
        self._zv2z: dict[int, np.ndarray] = {}

    # ---- S = Z'Vt^{-1}Z ----------------------------------------------------
    def s_times(self, v: np.ndarray) -> np.ndarray:
        """``S v`` for v (q, c)."""
        N1, n1, q1 = self.N1, self.n1, self.q1
        v1, vR = v[:N1], v[N1:]
        top = (self.w.C11 @ v1.reshape(n1, q1, -1)).reshape(N1, -1) - self.U1.T @ (self.U1 @ v1)
        top += self.S1R @ vR
        return np.vstack([top, self.S1R.T @ v1 + self.SRR @ vR])

    def diag_s(self, k: int) -> np.ndarray:
        """Per-level diagonal blocks of S over grouping block k."""
        if k == 0:
            return self.w.C11 - self.d1
        sl = self._rest_span(k)
        return _diag_blocks(self.SRR[sl, sl], self.blocks.n_levels[k], self.blocks.qs[k])

    def _rest_span(self, k: int) -> slice:
        s = self.blocks.span(k)
        return slice(s.start - self.N1, s.stop - self.N1)

    def diag_zv2z(self, k: int) -> np.ndarray:
        """Per-level diagonal blocks of ``Z'Vt^{-2}Z = S - J_Z'J_Z`` over block k (cached)."""
        if k not in self._zv2z:
            self._zv2z[k] = self.diag_s(k) - self.diag_jj(k)
        return self._zv2z[k]

    # ---- J'J -----------------------------------------------------------------
    def diag_jj(self, k: int) -> np.ndarray:
        """Per-level diagonal blocks of ``J_Z'J_Z`` over grouping block k."""
        n, q = self.blocks.n_levels[k], self.blocks.qs[k]
        if k > 0:
            sl = self._rest_span(k)
            Jk = np.vstack([self.w.J1R[:, sl], self.w.JR[:, self.N1 + sl.start : self.N1 + sl.stop]])
            return _level_dots(Jk, Jk, n, q)
        B1, Hm, JR1 = self.w.B1, self.w.Hm, self.JR1
        out = B1.transpose(0, 2, 1) @ B1
        if self.mz:
            G = np.einsum("lcm,mlb->lcb", Hm.reshape(n, q, -1), JR1.reshape(-1, n, q))
            BG = np.einsum("lca,lcb->lab", B1, G)
            out = out - BG - BG.transpose(0, 2, 1)
            out = out + _level_dots(JR1, self.HH @ JR1, n, q) + _level_dots(JR1, JR1, n, q)
        return out

    def jz_jx(self) -> np.ndarray:
        """``J_Z'J_X`` (q, p)."""
        N1, mz, n1, q1 = self.N1, self.mz, self.n1, self.q1
        J1X, JRX = self.w.J1R[:, mz:], self.w.JR[:, N1 + mz :]
        top = np.einsum("lca,lcj->laj", self.w.B1, J1X.reshape(n1, q1, -1)).reshape(N1, -1)
        top += self.JR1.T @ (JRX - self.w.Hm.T @ J1X)
        bottom = self.w.J1R[:, :mz].T @ J1X + self.w.JR[:, N1 : N1 + mz].T @ JRX
        return np.vstack([top, bottom])

    def minv_frobenius2(self) -> float:
        """``||M^{-1}||_F^2`` for ``M = Lambda'Z'Z Lambda + I``."""
        Mi = self.w.M11inv
        total = float(np.sum(Mi * Mi))
        if self.mz:
            LZ = self.w.LZ
            Y = solve_triangular(LZ, self.w.Hm.T, lower=True)  # (mz, n1 q1)
            total += 2.0 * float(np.sum(Mi * _level_dots(Y, Y, self.n1, self.q1)))
            YY = Y @ Y.T
            total += float(np.sum(YY * YY))
            total += 2.0 * float(np.sum(solve_triangular(LZ, Y, lower=True, trans="T") ** 2))
            LZi = solve_triangular(LZ, np.eye(self.mz), lower=True)
            RRi = LZi.T @ LZi
            total += float(np.sum(RRi * RRi))
        return total

    # ---- traces of E_i S E_j S ------------------------------------------------
    def _gram1(self, a: int, b: int) -> np.ndarray:
        """``U_1a U_1b'`` (mz, mz) for components a, b of the first block."""
        key = (a, b)
        if key not in self._gram:
            q1 = self.q1
            self._gram[key] = self.U1[:, a::q1] @ self.U1[:, b::q1].T
        return self._gram[key]

    def block_sum(self, k: int, kk: int, y: int, z: int, x: int, w: int) -> float:
        """``sum(S[I^k_y, I^kk_z] * S[I^k_x, I^kk_w])`` (k <= kk)."""
        if k == 0 and kk == 0:
            c, d = self.w.C11, self.d1
            total = float(np.sum(c[:, y, z] * c[:, x, w]))
            total -= float(np.sum(c[:, y, z] * d[:, x, w]) + np.sum(c[:, x, w] * d[:, y, z]))
            if self.mz:
                total += float(np.sum(self._gram1(y, x) * self._gram1(z, w)))
            return total
        qk, qkk = self.blocks.qs[k], self.blocks.qs[kk]
        cols = self._rest_span(kk)
        B = self.S1R[:, cols] if k == 0 else self.SRR[self._rest_span(k), cols]
        return float(np.sum(B[y::qk, z::qkk] * B[x::qk, w::qkk]))

    def lam_times(self, v: np.ndarray) -> np.ndarray:
        """``Lambda v`` for v (q, c) over all random effects."""
        Ts = list(self.f.templates)
        sizes = [self.n1, *(nl for nl, _ in self.obj.layout.rest)]
        return _left_templates(v, Ts, sizes, transpose=False)


@dataclass(frozen=True)
class KrProducts:
    """pbkrtest's ``P_i``, ``Q_ij`` and ``tr(V^{-1}G_i V^{-1}G_j)`` for the covariance parameters."""

    params: tuple[CovParameter, ...]
    P: np.ndarray  # (g, p, p)
    Q: np.ndarray  # (g, g, p, p), Q[j, i] = Q[i, j]'
    K: np.ndarray  # (g, g)


def _e_times(A: np.ndarray, par: CovParameter, blocks: _Blocks) -> np.ndarray:
    """``E_i A`` for A (q, c): rows of component a take A's rows of component b."""
    out = np.zeros_like(A)
    for a, b in par.pairs:
        out[blocks.index(par.block, a)] += A[blocks.index(par.block, b)]
    return out


def _trace_e(D: np.ndarray, par: CovParameter) -> float:
    """``tr(E_i A)`` from A's per-level diagonal blocks D (n, q, q) over the parameter's block."""
    return float(sum(D[:, b, a].sum() for a, b in par.pairs))


def _ktrace(alg: _Algebra, pi: CovParameter, pj: CovParameter) -> float:
    """``tr(E_i S E_j S)`` summed over the component pairs of both parameters."""
    if pi.block > pj.block:
        pi, pj = pj, pi
    total = 0.0
    for x, y in pi.pairs:
        for z, w in pj.pairs:
            total += alg.block_sum(pi.block, pj.block, y, z, x, w)
    return total


def kr_products(obj: LmmObjective, f: Factor, sigma: float) -> KrProducts:
    """``P_i``, ``Q_ij`` and the traces ``K_ij`` at (theta, sigma), from the blocked factor.

    Parameters are :func:`covariance_parameters` (pbkrtest's, up to a linear change of
    basis, under which Kenward-Roger's results do not change). Prior weights scale the
    rows, so the residual's ``G`` is ``W^{-1}``.

    Examples
    --------
    >>> import multilevel
    >>> m = multilevel.fit("Reaction ~ Days + (Days | Subject)", multilevel.load_dataset("sleepstudy"))
    >>> kp = kr_products(m.objective, m.factor, m.sigma)
    >>> kp.P.shape, kp.Q.shape, kp.K.shape
    ((4, 2, 2), (4, 4, 2, 2), (4, 4))
    """
    alg = _Algebra(obj, f)
    params = tuple(covariance_parameters(obj))
    g, p, blocks = len(params), alg.p, alg.blocks
    K = alg.K
    zero = np.zeros_like(K)
    EK = [zero if par.block < 0 else _e_times(K, par, blocks) for par in params]
    SEK = [zero if par.block < 0 else alg.s_times(e) for par, e in zip(params, EK)]
    ZV2X = K - alg.jz_jx()  # Z'Vt^{-2}X
    lamJX = alg.lam_times(alg.JX)
    P = np.empty((g, p, p))
    Q = np.empty((g, g, p, p))
    Kt = np.empty((g, g))
    for i, pi in enumerate(params):
        if pi.block < 0:
            P[i] = -(alg.XX - alg.JX.T @ alg.JX)
            cross = lamJX.T @ K
            Q[i, i] = alg.XX - cross - cross.T + lamJX.T @ alg.s_times(lamJX)
            Kt[i, i] = obj.n - alg.N1 - alg.mz + alg.minv_frobenius2()
            continue
        P[i] = -(EK[i].T @ K)
        for j in range(i, g):
            pj = params[j]
            if pj.block < 0:
                Q[i, j] = EK[i].T @ ZV2X
                Kt[i, j] = _trace_e(alg.diag_zv2z(pi.block), pi)
            else:
                Q[i, j] = EK[i].T @ SEK[j]
                Kt[i, j] = _ktrace(alg, pi, pj)
            Q[j, i] = Q[i, j].T
            Kt[j, i] = Kt[i, j]
    s2 = 1.0 if obj.sigma_fixed is not None else sigma * sigma
    P = 0.5 * (P + P.transpose(0, 2, 1))
    return KrProducts(params=params, P=P / s2**2, Q=Q / s2**3, K=Kt / s2**2)
