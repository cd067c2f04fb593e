"""Cross-products of ``[Z X y]`` in the blocked layout the LMM objective needs.

The first grouping block (the one with most random effects) is kept as per-level
``q1 x q1`` blocks ``A11``; its cross-products with everything else (``A1R``) are
sparse; the rest ``R = [Z_2 ... Z_K, X, y]`` is small enough to keep dense
(``ARR``). Computing these is one pass over the rows; every later step works on
them alone, so its cost does not grow with the number of rows. The products
are sums over rows, so chunks of rows can be computed apart and added
(:meth:`CrossProducts.__add__`), which is how the distributed path uses it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from . import one_block_compiled, wide


@dataclass(frozen=True)
class Layout:
    """Sizes of the blocked system: the first block and the dense rest.

    ``rest`` gives every other grouping block's (levels, columns), in the order
    of the dense part, so that ``Lambda`` can be applied from the templates alone.
    """

    n1: int  # levels of the first grouping block
    q1: int  # columns per level of the first block
    rest: tuple[tuple[int, int], ...]  # (levels, columns) of every other grouping block
    p: int  # fixed-effect columns

    @property
    def z_sizes(self) -> tuple[int, ...]:
        """Random effects (levels x columns) of every other grouping block."""
        return tuple(nl * q for nl, q in self.rest)

    @property
    def mz(self) -> int:
        """Random-effect rows of the dense part."""
        return sum(nl * q for nl, q in self.rest)

    @property
    def m(self) -> int:
        """Size of the dense part: other random effects, X, and y."""
        return self.mz + self.p + 1


@dataclass(frozen=True)
class CrossProducts:
    """Weighted cross-products of ``[Z X y]`` (offset already subtracted from y)."""

    layout: Layout
    n: int
    A11: np.ndarray  # (n1, q1, q1)
    A1R: sp.csr_matrix | np.ndarray  # (n1*q1, m): sparse, or dense for small systems
    ARR: np.ndarray  # (m, m) dense, symmetric
    sum_log_weights: float

    def __add__(self, other: CrossProducts) -> CrossProducts:
        if self.layout != other.layout:
            raise ValueError("cannot add cross-products of different layouts")
        return CrossProducts(
            layout=self.layout,
            n=self.n + other.n,
            A11=self.A11 + other.A11,
            A1R=_add(self.A1R, other.A1R),
            ARR=self.ARR + other.ARR,
            sum_log_weights=self.sum_log_weights + other.sum_log_weights,
        )


#: the share of a block's entries from which a sum of sparse blocks is kept dense
DENSE_SUM_SHARE = 0.5


def _add(a: sp.csr_matrix | np.ndarray, b: sp.csr_matrix | np.ndarray) -> sp.csr_matrix | np.ndarray:
    """The sum of two blocks stored either way: dense once either is, or once their
    entries fill :data:`DENSE_SUM_SHARE` of it (the partitions' sums of a tall design
    fill ``A1R``; adding a partition's sparse block to a dense sum is then one copy and
    a scatter, not a sparse merge of the whole)."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a + b
    if isinstance(a, np.ndarray):
        dense, other = a.copy(), b
    elif isinstance(b, np.ndarray):
        dense, other = b.copy(), a
    elif a.nnz + b.nnz < DENSE_SUM_SHARE * a.shape[0] * a.shape[1]:
        return (a + b).tocsr()
    else:
        dense, other = a.toarray(), b  # already a new array: no second copy
    _scatter_into(dense, other)
    return dense


def _scatter_into(dense: np.ndarray, other: sp.csr_matrix | np.ndarray) -> None:
    """``dense += other`` in place, ``other`` dense or sparse."""
    if isinstance(other, np.ndarray):
        dense += other
        return
    from .scalar_pass import scatter_csr  # Numba: imported by the passes that sum partitions

    other = sp.csr_matrix(other)
    scatter_csr(other.indptr, other.indices, other.data, dense)


def add_into(a: CrossProducts, b: CrossProducts) -> CrossProducts:
    """``a + b``, written into the arrays of whichever is dense (``A1R`` and ``ARR``),
    else ``a + b``.

    For a running sum that nothing else reads (the reduction of a data pass, where
    each partial sum is combined once): a tall design's dense ``A1R`` is then not
    copied for every partition added."""
    if a.layout != b.layout:
        raise ValueError("cannot add cross-products of different layouts")

    def dense(c: CrossProducts) -> bool:
        return isinstance(c.A1R, np.ndarray) and isinstance(c.ARR, np.ndarray)

    if dense(b) and not dense(a):  # into the running sum, whichever finished first
        a, b = b, a
    if not (dense(a) and isinstance(b.ARR, np.ndarray)):
        return a + b
    _scatter_into(a.A1R, b.A1R)
    a.A11[...] += b.A11
    a.ARR[...] += b.ARR
    return replace(a, n=a.n + b.n, sum_log_weights=a.sum_log_weights + b.sum_log_weights)


def as_dense(a: sp.csr_matrix | np.ndarray) -> np.ndarray:
    """A dense view of a cross-product block stored either way."""
    return a if isinstance(a, np.ndarray) else np.asarray(a.toarray())


DENSE_A1R_MAX = 2_000_000


def layout_of(sizes: list[tuple[int, int]], p: int) -> Layout:
    """Layout for grouping blocks of (levels, columns) in elimination order."""
    (n1, q1), rest = sizes[0], sizes[1:]
    return Layout(n1=int(n1), q1=int(q1), rest=tuple((int(n), int(q)) for n, q in rest), p=int(p))


def _zblock(codes: np.ndarray, values: np.ndarray, n_levels: int) -> sp.csr_matrix:
    """Sparse Z of one grouping block, columns level-major (level, term column)."""
    n, q = values.shape
    rows = np.repeat(np.arange(n), q)
    cols = (codes[:, None] * q + np.arange(q)[None, :]).ravel()
    return sp.csr_matrix((values.ravel(), (rows, cols)), shape=(n, n_levels * q))


class CrossProductBuilder:
    """Cross-products of ``[Z X y]`` for any row weights and response, structure cached.

    The sparse structure of Z is fixed by the grouping factors; only row weights
    and the response change between calls (the working weights and response of
    penalized IRLS), so each call is a few sparse products and bincounts, and
    ``A1R`` keeps the same sparsity structure from call to call.
    """

    def __init__(
        self,
        groups: list[tuple[np.ndarray, np.ndarray]],
        n_levels: list[int],
        X: np.ndarray,
    ) -> None:
        self.n = X.shape[0]
        self.X = np.ascontiguousarray(X, dtype=float)
        self.layout = layout_of([(nl, v.shape[1]) for nl, (_, v) in zip(n_levels, groups)], X.shape[1])
        self.codes1, self.v1 = groups[0]
        self._groups, self._n_levels = groups, n_levels
        lay = self.layout
        self.dense = lay.n1 * lay.q1 * lay.m <= DENSE_A1R_MAX
        # every row's entries in the other grouping blocks: column among the mz rest
        # random effects and value, as (n, r) arrays (read by PIRLS's compiled pass)
        cols, vals, start = [], [], 0
        for nl, (c, v) in zip(n_levels[1:], groups[1:]):
            q = v.shape[1]
            cols.append(start + c[:, None] * q + np.arange(q)[None, :])
            vals.append(v)
            start += nl * q
        self.zc = np.ascontiguousarray(
            np.concatenate(cols, axis=1) if cols else np.zeros((self.n, 0)), dtype=np.int64
        )
        self.zv = np.ascontiguousarray(
            np.concatenate(vals, axis=1) if vals else np.zeros((self.n, 0)), dtype=float
        )
        self._sparse: tuple | None = None
        self._bincount_idx: tuple | None = None

    def _sparse_z(self) -> tuple[sp.csr_matrix, np.ndarray, sp.csr_matrix | None, np.ndarray | None]:
        """Sparse ``Z_1'`` (with each stored entry's row) and ``[Z_2 ... Z_K]`` (built once,
        for the large-system path only)."""
        if self._sparse is None:
            groups, n_levels = self._groups, self._n_levels
            Z1T = _zblock(self.codes1, self.v1, self.layout.n1).T.tocsr()
            Z1T.sort_indices()
            RZ, rz_rows = None, None
            if len(groups) > 1:
                RZ = sp.hstack(
                    [_zblock(c, v, nl) for nl, (c, v) in zip(n_levels[1:], groups[1:])], format="csr"
                )
                RZ.sort_indices()
                rz_rows = np.repeat(np.arange(self.n), np.diff(RZ.indptr))
            self._sparse = (Z1T, Z1T.indices.copy(), RZ, rz_rows)
        return self._sparse

    def _dense_indices(self) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
        """Index arrays so that every product is a bincount (no sparse matrices per call)."""
        if self._bincount_idx is None:
            lay = self.layout
            q1, m, mz = lay.q1, lay.m, lay.mz
            r = self.zc.shape[1]
            # A1Z: (level, a) x rest-Z column; ZZ: pairs of rest-Z entries in a row
            a1z = [(self.codes1 * q1 + a)[:, None] * m + self.zc for a in range(q1)]
            zz_idx = (self.zc[:, :, None] * mz + self.zc[:, None, :]).reshape(self.n, r * r)
            zz_val = (self.zv[:, :, None] * self.zv[:, None, :]).reshape(self.n, r * r)
            self._bincount_idx = (a1z, zz_idx, zz_val)
        return self._bincount_idx

    def _compute_dense(self, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        lay = self.layout
        n1, q1, p, mz, m = lay.n1, lay.q1, lay.p, lay.mz, lay.m
        a1z_idx, zz_idx, zz_val = self._dense_indices()
        D = np.column_stack([self.X, y])
        A1R = np.zeros((n1 * q1, m))
        for a in range(q1):
            wa = w * self.v1[:, a]
            if mz:
                A1R.ravel()[:] += np.bincount(
                    a1z_idx[a].ravel(), weights=(wa[:, None] * self.zv).ravel(), minlength=n1 * q1 * m
                )
            rows = self.codes1 * q1 + a
            for j in range(p + 1):
                A1R[:, mz + j] += np.bincount(rows, weights=wa * D[:, j], minlength=n1 * q1)
        ARR = np.empty((m, m))
        Dw = D * w[:, None]
        ARR[mz:, mz:] = D.T @ Dw
        if mz:
            ARR[:mz, :mz] = np.bincount(
                zz_idx.ravel(), weights=(w[:, None] * zz_val).ravel(), minlength=mz * mz
            ).reshape(mz, mz)
            ZD = np.empty((mz, p + 1))
            for j in range(p + 1):
                ZD[:, j] = np.bincount(self.zc.ravel(), weights=(self.zv * Dw[:, [j]]).ravel(), minlength=mz)
            ARR[:mz, mz:] = ZD
            ARR[mz:, :mz] = ZD.T
        return A1R, ARR

    def compute(
        self, y: np.ndarray, weights: np.ndarray | None = None, *, log_weights: bool = True
    ) -> CrossProducts:
        """Cross-products for response ``y`` and row ``weights``; ``log_weights=False``
        skips ``sum(log w)`` (the REML/ML constant, which PIRLS does not use)."""
        lay = self.layout
        n1, q1, p, mz = lay.n1, lay.q1, lay.p, lay.mz
        w = np.ones(self.n) if weights is None else weights
        slw = sum_log_weights(weights) if log_weights else 0.0
        A11 = np.empty((n1, q1, q1))
        for a in range(q1):
            for b in range(a, q1):
                s = np.bincount(self.codes1, weights=w * self.v1[:, a] * self.v1[:, b], minlength=n1)
                A11[:, a, b] = s
                A11[:, b, a] = s
        if self.dense:
            A1R_d, ARR_d = self._compute_dense(y, w)
            return CrossProducts(layout=lay, n=self.n, A11=A11, A1R=A1R_d, ARR=ARR_d, sum_log_weights=slw)
        Z1T, z1_rows, RZ, rz_rows = self._sparse_z()
        D = np.column_stack([self.X, y])
        Dw = D * w[:, None]
        Z1Tw = Z1T.copy()
        Z1Tw.data = Z1T.data * w[z1_rows]
        A1D = Z1Tw @ D  # (n1 q1, p + 1), dense
        k = p + 1
        A1D_sp = sp.csr_matrix(
            (
                np.ascontiguousarray(A1D).ravel(),
                np.tile(np.arange(mz, mz + k), n1 * q1),
                np.arange(0, n1 * q1 * k + 1, k),
            ),
            shape=(n1 * q1, mz + k),
        )
        ARR = np.empty((mz + k, mz + k))
        ARR[mz:, mz:] = D.T @ Dw
        if RZ is not None:
            A1Z = (Z1Tw @ RZ).tocsr()
            A1Z.sort_indices()
            A1Z.resize((n1 * q1, mz + k))
            A1R = (A1Z + A1D_sp).tocsr()
            RZw = RZ.copy()
            RZw.data = RZ.data * w[rz_rows]
            ARR[:mz, :mz] = (RZ.T @ RZw).toarray()
            ZD = np.asarray(RZw.T @ D)
            ARR[:mz, mz:] = ZD
            ARR[mz:, :mz] = ZD.T
        else:
            A1R = A1D_sp
        A1R.sort_indices()
        return CrossProducts(layout=lay, n=self.n, A11=A11, A1R=A1R, ARR=ARR, sum_log_weights=slw)


class GroupRows(Protocol):
    """One grouping block's rows: level codes (n,) and term values (n, q)."""

    @property
    def codes(self) -> np.ndarray: ...

    @property
    def values(self) -> np.ndarray: ...


class RowData(Protocol):
    """What the cross-products read from a design (:class:`multilevel.model.design.Design`
    has these), declared here so that the linear algebra does not depend on the model."""

    @property
    def y(self) -> np.ndarray: ...

    @property
    def X(self) -> np.ndarray: ...

    @property
    def offset(self) -> np.ndarray | None: ...

    @property
    def residual_weights(self) -> np.ndarray | None: ...

    @property
    def groups(self) -> Sequence[GroupRows]: ...


def compute_crossprods(design: RowData, n_levels: list[int], rows: slice | None = None) -> CrossProducts:
    """One pass over the rows of ``design`` (optionally a slice of them).

    ``n_levels`` gives the number of levels of each grouping block, in the
    design's (elimination) order.
    """
    sel = rows if rows is not None else slice(None)
    y = design.y[sel]
    if design.offset is not None:
        y = y - design.offset[sel]
    rw = design.residual_weights
    w = rw[sel] if rw is not None else None
    groups = [(g.codes[sel], g.values[sel]) for g in design.groups]
    if scalar_applies(n_levels, [v.shape[1] for _, v in groups], design.X.shape[1]):
        return scalar_crossprods(groups, n_levels, design.X[sel], y, w)
    if len(groups) == 1:
        one = _one_block_pass(groups[0], n_levels[0], design.X[sel], y, w)
        if one is not None:
            return one
    return CrossProductBuilder(groups, n_levels, design.X[sel]).compute(y, w)


def _one_block_pass(
    group: tuple[np.ndarray, np.ndarray], n1: int, X: np.ndarray, y: np.ndarray, w: np.ndarray | None
) -> CrossProducts | None:
    """One grouping block's cross-products in one compiled pass over the rows, where
    this process has the compiled one-block kernels (:mod:`.one_block_compiled`)."""
    kernels = one_block_compiled.loaded()
    codes, V = group
    lay = layout_of([(n1, V.shape[1])], X.shape[1])
    if kernels is None or lay.n1 * lay.q1 * lay.m > DENSE_A1R_MAX:
        return None
    q, m = lay.q1, lay.m
    A11, A1R, ARR = np.empty((n1, q, q)), np.empty((n1 * q, m)), np.empty((m, m))
    c = np.ascontiguousarray
    ww = np.ones(len(y)) if w is None else c(w, dtype=float)
    kernels.crossproducts(
        c(codes, dtype=np.int64),
        c(V, dtype=float),
        c(X, dtype=float),
        c(y, dtype=float),
        ww,
        A11,
        A1R.reshape(n1, q, m),
        ARR,
    )
    return CrossProducts(layout=lay, n=len(y), A11=A11, A1R=A1R, ARR=ARR, sum_log_weights=sum_log_weights(w))


def scalar_crossprods(
    groups: list[tuple[np.ndarray, np.ndarray]],
    n_levels: list[int],
    X: np.ndarray,
    y: np.ndarray,
    w: np.ndarray | None,
) -> CrossProducts:
    """Cross-products of ``[Z X y]`` for two or more scalar blocks: ``A11`` per
    first-block level, ``A1R`` sparse (the cross-tabulation of the first block with the
    rest, then its sums of ``X`` and ``y``), ``ARR`` dense, or a :class:`RestBorder`
    for one wide rest block (:func:`.wide.applies`); compiled passes over the rows'
    codes (:mod:`.scalar_pass`)."""
    from .scalar_pass import scalar_pass

    (c1, v1), rest = groups[0], groups[1:]
    n, p = X.shape
    lay = layout_of([(nl, 1) for nl in n_levels], p)
    compact = wide.applies(n_levels, [1] * len(n_levels))  # the dense (m, m) it stands for is not formed
    A11, (indptr, indices, data), diag, border_z, DD, dense = scalar_pass(
        c1, v1, rest, n_levels, w, X, y, dense_rest=not compact
    )
    mz, m = lay.mz, lay.m
    A1R = sp.csr_matrix((data, indices, indptr), shape=(lay.n1, m))
    A1R.has_sorted_indices = True
    A1R.has_canonical_format = True
    ARR: Any = dense
    if compact:
        border = np.empty((p + 1, m))
        border[:, :mz] = border_z
        border[:, mz:] = DD
        ARR = wide.RestBorder(diag, border)
    return CrossProducts(
        layout=lay, n=n, A11=A11[:, None, None], A1R=A1R, ARR=ARR, sum_log_weights=sum_log_weights(w)
    )


def scalar_applies(n_levels: list[int], qs: list[int], p: int) -> bool:
    """Whether the compiled pass of :func:`scalar_crossprods` builds a design's
    cross-products: two or more scalar blocks, and ``A1R`` sparse (too large to keep
    dense) or one wide rest block."""
    if len(n_levels) < 2 or any(q != 1 for q in qs):
        return False
    m = sum(n_levels[1:]) + p + 1
    return wide.applies(n_levels, qs) or n_levels[0] * m > DENSE_A1R_MAX


def sum_log_weights(w: np.ndarray | None) -> float:
    """``sum(log w)`` over the positive row weights (0 without weights): the constant the
    REML and ML criteria carry for prior weights."""
    if w is None:
        return 0.0
    ww = np.asarray(w, dtype=float)
    return float(np.sum(np.log(ww[ww > 0])))
