"""The row passes of a GLMM fit: everything PIRLS, the Laplace gradient and quadrature
compute from the rows, behind one interface for rows in memory and rows on a cluster.

A pass takes the rows' current state (the linear predictor and the means at some
``(u, beta)``) and values broadcast from the fit (the effects, the fixed effects, blocks
of a factor) and returns a new state, kept with the rows, and a result that is a sum
over rows: a log-likelihood, weighted cross-products, per-level sums. Sums of
partitions are sums of the whole, so the same method serves :class:`GlmmRows` (all
rows in memory, what :class:`~multilevel.glmm.pirls.GlmmProblem` uses by default) and
a cluster that keeps one :class:`GlmmRows` per partition on its workers and adds
their results (:mod:`multilevel.api.distributed_glmm`).

:meth:`GlmmRows.run` is the interface: ``run(name, state, *args)`` calls the pass
``name`` and returns ``(state, result)``. :func:`combine` adds two partitions' results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from ..family import Family
from ..family.derivatives import eta_derivatives, eta_derivatives_ddisp
from ..linalg.blocked import PairStructure
from ..linalg.crossprod import CrossProductBuilder, CrossProducts
from ..model.design import Design

#: use the pairwise Schur update when it has this many times fewer terms than the
#: dense product (a pair costs a gather and a bincount, a dense term a BLAS flop)
PAIR_ADVANTAGE = 40


@dataclass(frozen=True)
class RowState:
    """The rows' linear predictor and means at one point (kept where the rows are)."""

    eta: np.ndarray
    mu: np.ndarray


@dataclass(frozen=True)
class Largest:
    """A result combined by its maximum rather than its sum."""

    value: float


@dataclass(frozen=True)
class Mean:
    """A result combined as the mean of the partitions' values, weighted by ``weight``."""

    value: float
    weight: float


@dataclass(frozen=True)
class GradientState:
    """The rows' derivatives and gathers of one gradient, between its two passes."""

    state: RowState
    W: np.ndarray
    score: np.ndarray
    H: np.ndarray
    v: np.ndarray  # h dW / deta
    h: np.ndarray  # the leverages
    ys: list[np.ndarray]  # y_i = M^{-1} Lambda'z_i per grouping block
    dW_disp: np.ndarray | None
    dscore_disp: np.ndarray | None


def combine(a: Any, b: Any) -> Any:
    """Two partitions' results added (``None``: a partition without rows)."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, Largest):
        return Largest(max(a.value, b.value))
    if isinstance(a, Mean):
        w = a.weight + b.weight
        return Mean((a.value * a.weight + b.value * b.weight) / w if w > 0 else a.value, w)
    if isinstance(a, tuple):
        return tuple(combine(x, y) for x, y in zip(a, b))
    if isinstance(a, list):
        return [combine(x, y) for x, y in zip(a, b)]
    return a + b


def _pair_structure(builder: CrossProductBuilder) -> PairStructure | None:
    """The fixed pairwise structure of the Schur update, where it pays (see
    :class:`~multilevel.linalg.blocked.PairStructure`), else None."""
    lay = builder.layout
    if not builder.dense or lay.q1 != 1:
        return None
    n1, m, mz = lay.n1, lay.m, lay.mz
    rows = np.concatenate([np.repeat(builder.codes1, builder.zc.shape[1]), np.repeat(np.arange(n1), m - mz)])
    cols = np.concatenate([builder.zc.ravel(), np.tile(np.arange(mz, m), n1)])
    pat = sp.csr_matrix((np.ones(rows.size), (rows, cols)), shape=(n1, m))
    pat.sum_duplicates()
    nnz = np.diff(pat.indptr)
    if PAIR_ADVANTAGE * float(np.sum(nnz * (nnz + 1) / 2)) >= n1 * m * m:
        return None
    return PairStructure.build(pat, m)


def gathers(
    groups: list[tuple[np.ndarray, np.ndarray]],
    colsR: np.ndarray,
    inverse: tuple[np.ndarray, np.ndarray | None, np.ndarray | None],
    Ts: list[np.ndarray],
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Each row's scaled Z row ``x_i = Lambda'z_i`` and ``y_i = M^{-1} x_i`` at its own
    levels, per grouping block, from :func:`inverse_blocks` (``colsR``: each row's
    columns among the rest, (n, r))."""
    S11, S1R, SRR = inverse
    c1 = groups[0][0]
    x1 = groups[0][1] @ Ts[0]
    if S1R is None or SRR is None:
        return [x1], [np.einsum("iab,ib->ia", S11[c1], x1)]
    q1 = S11.shape[1]
    xs = [x1] + [vals @ T for T, (_, vals) in zip(Ts[1:], groups[1:])]
    xR = np.concatenate(xs[1:], axis=1)  # (n, r)
    if q1 == 1:
        C = S1R[c1[:, None], 0, colsR]  # (n, r)
        y1 = S11[c1, 0, 0][:, None] * x1 + np.einsum("ir,ir->i", C, xR)[:, None]
        yR = C * x1
    else:
        C3 = S1R[c1[:, None], :, colsR]  # (n, r, q1)
        y1 = np.einsum("iab,ib->ia", S11[c1], x1) + np.einsum("ira,ir->ia", C3, xR)
        yR = np.einsum("ira,ia->ir", C3, x1)
    yR = yR + np.einsum("irs,is->ir", SRR[colsR[:, :, None], colsR[:, None, :]], xR)
    ys = [y1]
    start = 0
    for x in xs[1:]:
        ys.append(yR[:, start : start + x.shape[1]])
        start += x.shape[1]
    return xs, ys


@dataclass(frozen=True)
class RowTerms:
    """Per-observation derivatives of the conditional log-likelihood at the mode."""

    W: np.ndarray  # the weights of the log-determinant: expected, or observed (= H)
    score: np.ndarray  # dl / deta
    H: np.ndarray  # -d^2 l / deta^2 (observed): the mode's sensitivity
    dW: np.ndarray  # dW / deta
    dW_disp: np.ndarray | None  # d W / d dispersion at fixed eta
    dscore_disp: np.ndarray | None  # d score / d dispersion at fixed eta


def row_terms(
    fam: Family, y: np.ndarray, w0: np.ndarray, state: RowState, disp: float, observed: bool
) -> RowTerms:
    """The rows' derivatives at the state: of the observed-information Laplace deviance
    (``observed``), else of the expected-information one."""
    eta, mu = state.eta, state.mu
    d = eta_derivatives(fam, y, eta, mu, w0, disp, third=observed)
    dW_disp = dscore_disp = None
    if observed:
        # observed Laplace: the determinant's weights are the observed ones
        assert d.dhessian is not None
        if fam.has_dispersion:
            dscore_disp, dW_disp = eta_derivatives_ddisp(fam, y, eta, mu, w0, disp)
        return RowTerms(d.hessian, d.score, d.hessian, d.dhessian, dW_disp, dscore_disp)
    link = fam.link
    mu_eta, mu_eta2 = d.mu_eta, link.mu_eta2(eta)
    var = fam.variance(mu, disp)
    w_var = w0 / var
    W = w_var * mu_eta**2
    bend = mu_eta**2 * fam.dvariance(mu, disp) / var  # the variance's change along eta, per mu_eta'
    dW = w_var * mu_eta * (2.0 * mu_eta2 - bend)
    if fam.has_dispersion:
        dvd = fam.dvariance_ddisp(mu, disp)
        dW_disp = -w0 * mu_eta**2 * dvd / var**2
        dscore_disp = -w0 * (y - mu) * mu_eta * dvd / var**2
    # for a canonical link d theta / d eta is constant: observed and expected information agree
    return RowTerms(W, d.score, W if fam.canonical else d.hessian, dW, dW_disp, dscore_disp)


def _per_level(codes: np.ndarray, values: np.ndarray, weights: np.ndarray, n_levels: int) -> np.ndarray:
    """``Z_k' weights`` as (n_levels, q)."""
    out = np.empty((n_levels, values.shape[1]))
    for a in range(values.shape[1]):
        out[:, a] = np.bincount(codes, weights=weights * values[:, a], minlength=n_levels)
    return out


class GlmmRows:
    """A GLMM's rows in memory (all of them, or one partition's) and their passes."""

    remote = False

    def __init__(
        self,
        design: Design,
        n_levels: list[int],
        family: Family,
        *,
        compiled: bool = True,
        pairs: bool = True,
    ) -> None:
        # ``compiled``: the row passes run through the Numba kernels (multilevel.linalg.kernels):
        # ~1.3x faster iterations, ~0.5 s once per process to start Numba.
        # ``pairs``: find the pairwise structure of the Schur update (all rows in one place only)
        self.design, self.family, self.n_levels = design, family, list(n_levels)
        self.y = np.ascontiguousarray(design.y, dtype=float)
        self.n = design.n
        self.w0 = np.ascontiguousarray(design.weights if design.weights is not None else np.ones(self.n))
        self.offset = design.offset if design.offset is not None else np.zeros(self.n)
        self.X = np.ascontiguousarray(design.X, dtype=float)
        self.groups = [(g.codes, g.values) for g in design.groups]
        self.builder_u = CrossProductBuilder(self.groups, self.n_levels, np.zeros((self.n, 0)))
        self.builder_ub = CrossProductBuilder(self.groups, self.n_levels, self.X)
        family.check(self.y, self.w0)
        self.mustart = family.mustart(self.y, self.w0)
        self._log_const = float(np.sum(family.logpdf_constant(self.y, self.w0)))
        # every row's random-effect values and the position of its effects in the
        # flat vector of all Lambda u: the first block's, then the builder's rest columns
        b = self.builder_u
        q1, n1q1 = b.layout.q1, b.layout.n1 * b.layout.q1
        self._V = np.ascontiguousarray(np.concatenate([b.v1, b.zv], axis=1), dtype=float)
        self._idx = np.concatenate([b.codes1[:, None] * q1 + np.arange(q1)[None, :], n1q1 + b.zc], axis=1)
        # a family without a kernel code runs its row passes in NumPy
        self._family_code = -1 if family.kernel_code is None else family.kernel_code
        self.compiled = compiled and self._family_code >= 0
        self._xx: dict[bool, Any] = {False: None, True: None}
        self.pairs: dict[bool, PairStructure | None] = {}
        for joint, builder in ((False, self.builder_u), (True, self.builder_ub)):
            if self.compiled:
                from ..linalg.kernels import x_outer

                self._xx[joint] = x_outer(builder.X)
            self.pairs[joint] = _pair_structure(builder) if pairs else None
        self._base: tuple[np.ndarray, np.ndarray] | None = None

    def run(self, name: str, state: Any, *args: Any) -> tuple[Any, Any]:
        """The pass ``name`` (a method below) at ``state``: ``(new state or None, result)``."""
        return getattr(self, name)(state, *args)

    # ---- helpers -------------------------------------------------------
    def base(self, beta: np.ndarray | None) -> np.ndarray:
        """``offset + X beta`` (the offset alone for None), the last one cached."""
        if beta is None or beta.size == 0:
            return self.offset
        if self._base is None or not np.array_equal(self._base[0], beta):
            self._base = (beta.copy(), self.offset + self.X @ beta)
        return self._base[1]

    def cond_loglik(self, mu: np.ndarray, disp: float) -> float:
        """sum log p(y | mu) (the mu-free part cached)."""
        return float(np.sum(self.family.logpdf_kernel(self.y, mu, self.w0, disp))) + self._log_const

    def _loglik(self, mu: np.ndarray, disp: float) -> float:
        return self.cond_loglik(mu, disp) if self.family.valid_mu(mu) else -math.inf

    def _builder(self, joint: bool) -> CrossProductBuilder:
        return self.builder_ub if joint else self.builder_u

    # ---- the passes: each returns (state or None, a sum over rows) -----------------
    def start(self, _state: None, disp: float) -> tuple[RowState, float]:
        """The family's starting means."""
        eta = self.family.link.link(self.mustart)
        mu = self.family.link.inverse(eta)
        return RowState(eta, mu), self.cond_loglik(mu, disp)

    def predict(self, _state: Any, b: np.ndarray, beta: np.ndarray, disp: float) -> tuple[RowState, float]:
        """eta, mu and sum log p(y | mu) at ``(Lambda u = b, beta)``; the log-likelihood is
        -inf where a mean leaves the family's support."""
        base = self.base(beta)
        if self.compiled:
            from ..linalg.kernels import linear_predictor

            eta = linear_predictor(base, self._V, self._idx, b)
        else:
            eta = base + np.einsum("ij,ij->i", self._V, b[self._idx])
        mu = self.family.link.inverse(eta)
        return RowState(eta, mu), self._loglik(mu, disp)

    def predict_weighted(
        self, _state: Any, b: np.ndarray, beta: np.ndarray, disp: float, joint: bool
    ) -> tuple[RowState, tuple[float, CrossProducts | None]]:
        """:meth:`predict` and, where the means are valid, :meth:`weighted` there: a step of
        PIRLS and the next step's system in one pass."""
        st, ll = self.predict(None, b, beta, disp)
        cp = self.weighted(st, joint, None if joint else beta, disp)[1] if math.isfinite(ll) else None
        return st, (ll, cp)

    def weighted(
        self, state: RowState, joint: bool, beta: np.ndarray | None, disp: float
    ) -> tuple[None, CrossProducts]:
        """The working weights' cross-products of ``[Z X z]`` at the state (``beta``: the
        fixed effects held fixed, None when they are estimated with ``u``)."""
        builder = self._builder(joint)
        eta, mu = state.eta, state.mu
        zshift = self.base(None if joint else beta)
        mu_eta = self.family.link.mu_eta(eta)
        if builder.dense and self.compiled:
            from ..linalg.kernels import weights_pass

            lay = builder.layout
            _, A11, A1R, ARR = weights_pass(
                eta, mu, mu_eta, self.y, self.w0, zshift, self._family_code, float(disp),
                builder.codes1, builder.v1, builder.zc, builder.zv, builder.X,
                self._xx[joint], lay.n1, lay.mz,
            )  # fmt: skip
            return None, CrossProducts(layout=lay, n=self.n, A11=A11, A1R=A1R, ARR=ARR, sum_log_weights=0.0)
        W = self.w0 * mu_eta**2 / self.family.variance(mu, disp)
        z = eta - zshift + (self.y - mu) / mu_eta
        return None, builder.compute(z, W, log_weights=False)

    def newton(
        self, state: RowState, joint: bool, beta: np.ndarray | None, disp: float
    ) -> tuple[None, tuple[int, CrossProducts | None]]:
        """A Newton step's system (IRLS with the observed weights H): the number of rows
        whose H is negative (then no system) and the cross-products."""
        d = eta_derivatives(self.family, self.y, state.eta, state.mu, self.w0, disp)
        H = d.hessian
        negative = int(np.count_nonzero(~(H >= 0)))
        if negative:
            return None, (negative, None)
        step = np.divide(d.score, H, out=np.zeros_like(H), where=H > 0)
        zshift = self.base(None if joint else beta)
        return None, (0, self._builder(joint).compute(state.eta - zshift + step, H, log_weights=False))

    def observed(self, state: RowState, disp: float) -> tuple[None, CrossProducts]:
        """The cross-products of Z with the observed weights at the state."""
        H = eta_derivatives(self.family, self.y, state.eta, state.mu, self.w0, disp).hessian
        return None, self._weight_crossprods(H)

    def _weight_crossprods(self, H: np.ndarray) -> CrossProducts:
        # the response column is not used; any response outside the span of Z will do
        return self.builder_u.compute(np.cos(np.arange(self.n) * 1.618), H, log_weights=False)

    def pearson(self, state: RowState) -> tuple[None, float]:
        """sum w (y - mu)^2 / V(mu)."""
        return None, float(np.sum(self.w0 * (self.y - state.mu) ** 2 / self.family.variance(state.mu, 1.0)))

    def unit_deviance(self, state: RowState, disp: float) -> tuple[None, float]:
        """The sum of the deviance residuals at the state."""
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return None, float(np.sum(self.family.unit_deviance(self.y, state.mu, self.w0, disp)))

    def lme4_aic(self, state: RowState) -> tuple[None, float]:
        """The family's aic at the state's means with lme4's dispersion (the deviance over
        sum(w)); infinite where a mean leaves the family's mean space."""
        mu = state.mu
        if not self.family.valid_mu(mu):
            return None, math.inf
        _, dev = self.unit_deviance(state, 1.0)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            aic = self.family.lme4_aic(self.y, mu, self.w0, dev)
        return None, (aic if math.isfinite(aic) else math.inf)

    def response_range(self, _state: None) -> tuple[None, tuple[Largest, Largest]]:
        """The response's largest value and minus its smallest."""
        return None, (Largest(float(self.y.max())), Largest(-float(self.y.min())))

    def fixed_crossprod(self, _state: None) -> tuple[None, np.ndarray]:
        """``X'X`` (the rank check of the fixed effects)."""
        return None, self.X.T @ self.X

    def mean_response(self, _state: None) -> tuple[None, Mean]:
        """The response's weighted mean."""
        total = float(self.w0.sum())
        return None, Mean(float(np.average(self.y, weights=self.w0)) if total > 0 else 0.0, total)

    def dispersion_start(self, _state: None, mu_bar: float) -> tuple[None, Mean]:
        """The family's moment estimate of the dispersion at the mean (over the rows: a
        family's estimate that is not a mean over rows is approximated by the partitions'
        average, which only moves the optimizer's start)."""
        mu = np.full_like(self.y, mu_bar)
        return None, Mean(self.family.default_dispersion(self.y, mu, self.w0), float(self.n))

    def outside_link(self, state: RowState) -> tuple[None, int]:
        """Rows whose linear predictor is outside the link's domain."""
        ok = self.family.link.valid_eta(state.eta)
        return None, (0 if ok is None else int(np.size(ok) - np.count_nonzero(ok)))

    def extreme(self, state: RowState, bound: float) -> tuple[None, int]:
        """Rows whose linear predictor less the offset exceeds ``bound`` in magnitude."""
        return None, int(np.count_nonzero(np.abs(state.eta - self.offset) > bound))

    # ---- the Laplace gradient's two passes (multilevel.glmm.gradient) ---------------
    def gradient_rows(
        self,
        state: RowState,
        inverse: tuple[np.ndarray, np.ndarray | None, np.ndarray | None],
        Ts: list[np.ndarray],
        disp: float,
        observed: bool,
    ) -> tuple[GradientState, tuple[list[np.ndarray], Largest, Largest]]:
        """First pass: the rows' derivatives, leverages ``h`` and ``v = h dW/deta`` from the
        blocks ``(S11, S1R, SRR)`` of ``M^{-1}``; the result is ``Z_k' v`` per block (Lambda
        not applied) and the largest ``|H - W|`` and ``|W|`` (whether one factor serves both)."""
        t = row_terms(self.family, self.y, self.w0, state, disp, observed)
        xs, ys = gathers(self.groups, self.builder_u.zc, inverse, Ts)
        h = np.zeros(self.n)
        for x, yk in zip(xs, ys):
            h += np.einsum("ia,ia->i", x, yk)
        v = h * t.dW
        c = [_per_level(codes, vals, v, nl) for (codes, vals), nl in zip(self.groups, self.n_levels)]
        gap = float(np.max(np.abs(t.H - t.W), initial=0.0))
        scale = float(np.max(np.abs(t.W), initial=0.0))
        g = GradientState(state, t.W, t.score, t.H, v, h, ys, t.dW_disp, t.dscore_disp)
        return g, (c, Largest(gap), Largest(scale))

    def gradient_curvature(self, g: GradientState) -> tuple[None, CrossProducts]:
        """The cross-products of Z with the observed weights H (the mode's sensitivity)."""
        return None, self._weight_crossprods(g.H)

    def gradient_sums(
        self, g: GradientState, ab: list[np.ndarray], disp: float
    ) -> tuple[None, tuple[np.ndarray, list[np.ndarray], list[np.ndarray], list[np.ndarray], np.ndarray]]:
        """Second pass, with ``ab = Lambda a`` per block: ``X'g``, and per block ``Z_k'g``,
        ``Z_k' score`` and the trace term ``V_k'(W y_k)``; the dispersion's terms
        ``(sum dlogp/ddisp, h'dW_disp, (Z Lambda a)'dscore_disp)``."""
        zla = np.zeros(self.n)
        for (codes, vals), bk in zip(self.groups, ab):
            zla += np.einsum("ij,ij->i", vals, bk[codes])
        gvec = -2.0 * g.score + g.v - g.H * zla
        zg, zr, tr = [], [], []
        for k, ((codes, vals), nl) in enumerate(zip(self.groups, self.n_levels)):
            zg.append(_per_level(codes, vals, gvec, nl))
            zr.append(_per_level(codes, vals, g.score, nl))
            tr.append(vals.T @ (g.W[:, None] * g.ys[k]))
        disp_terms = np.zeros(3)
        if g.dW_disp is not None and g.dscore_disp is not None:
            dl = float(np.sum(self.family.dlogpdf_ddisp(self.y, g.state.mu, self.w0, disp)))
            disp_terms = np.array([dl, float(g.h @ g.dW_disp), float(zla @ g.dscore_disp)])
        return None, (self.X.T @ gvec, zg, zr, tr, disp_terms)

    # ---- adaptive quadrature (multilevel.glmm.agq) ------------------------------
    def quadrature(
        self, _state: Any, beta: np.ndarray, T: np.ndarray, u: np.ndarray, disp: float
    ) -> tuple[None, np.ndarray]:
        """sum log p(y | u_k) per node k and level of the one grouping factor (K, levels),
        ``u`` (K, levels, q) the nodes' effects."""
        codes, vals = self.groups[0]
        n_levels, K = self.n_levels[0], u.shape[0]
        vt = vals @ T  # row i: v_i' T, so eta = eta0 + vt_i . u_level
        eta = self.base(beta)[None, :] + np.einsum("ij,kij->ki", vt, u[:, codes, :])
        mu = self.family.link.inverse(eta)
        lp = self.family.logpdf_kernel(self.y[None, :], mu, self.w0[None, :], disp)
        flat = (codes[None, :] + n_levels * np.arange(K)[:, None]).ravel()
        ll = np.bincount(flat, weights=lp.ravel(), minlength=K * n_levels).reshape(K, n_levels)
        ll += np.bincount(codes, weights=self.family.logpdf_constant(self.y, self.w0), minlength=n_levels)
        return None, ll
