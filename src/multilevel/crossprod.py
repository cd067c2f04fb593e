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

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .design import Design


@dataclass(frozen=True)
class Layout:
    """Sizes of the blocked system: the first block and the dense rest."""

    n1: int  # levels of the first grouping block
    q1: int  # columns per level of the first block
    z_sizes: tuple[int, ...]  # levels x columns of every other grouping block
    p: int  # fixed-effect columns

    @property
    def mz(self) -> int:
        """Random-effect rows of the dense part."""
        return sum(self.z_sizes)

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
    A1R: sp.csr_matrix  # (n1*q1, m)
    ARR: np.ndarray  # (m, m) dense, symmetric
    sum_log_weights: float

    def __add__(self, other: CrossProducts) -> CrossProducts:
        if self.layout != other.layout:
            raise ValueError("cannot add cross-products of different layouts")
        return CrossProducts(
            layout=self.layout,
            n=self.n + other.n,
            A11=self.A11 + other.A11,
            A1R=(self.A1R + other.A1R).tocsr(),
            ARR=self.ARR + other.ARR,
            sum_log_weights=self.sum_log_weights + other.sum_log_weights,
        )


def layout_of(sizes: list[tuple[int, int]], p: int) -> Layout:
    """Layout for grouping blocks of (levels, columns) in elimination order."""
    (n1, q1), rest = sizes[0], sizes[1:]
    return Layout(n1=n1, q1=q1, z_sizes=tuple(n * q for n, q in rest), p=p)


def _zblock(codes: np.ndarray, values: np.ndarray, n_levels: int) -> sp.csr_matrix:
    """Sparse Z of one grouping block, columns level-major (level, term column)."""
    n, q = values.shape
    rows = np.repeat(np.arange(n), q)
    cols = (codes[:, None] * q + np.arange(q)[None, :]).ravel()
    return sp.csr_matrix((values.ravel(), (rows, cols)), shape=(n, n_levels * q))


def compute_crossprods(design: Design, n_levels: list[int], rows: slice | None = None) -> CrossProducts:
    """One pass over the rows of ``design`` (optionally a slice of them).

    ``n_levels`` gives the number of levels of each grouping block, in the
    design's (elimination) order.
    """
    sel = rows if rows is not None else slice(None)
    y = design.y[sel]
    if design.offset is not None:
        y = y - design.offset[sel]
    X = design.X[sel]
    w = design.weights[sel] if design.weights is not None else None
    sw = np.sqrt(w) if w is not None else None
    groups = [(g.codes[sel], g.values[sel]) for g in design.groups]
    if sw is not None:
        X = X * sw[:, None]
        y = y * sw
        groups = [(c, v * sw[:, None]) for c, v in groups]
    layout = layout_of([(nl, v.shape[1]) for nl, (_, v) in zip(n_levels, groups)], X.shape[1])
    codes1, v1 = groups[0]
    q1 = layout.q1
    A11 = np.empty((layout.n1, q1, q1))
    for a in range(q1):
        for b in range(a, q1):
            s = np.bincount(codes1, weights=v1[:, a] * v1[:, b], minlength=layout.n1)
            A11[:, a, b] = s
            A11[:, b, a] = s
    Z1 = _zblock(codes1, v1, layout.n1)
    parts = [_zblock(c, v, nl) for nl, (c, v) in zip(n_levels[1:], groups[1:])]
    parts.append(sp.csr_matrix(np.column_stack([X, y])))
    R = sp.hstack(parts, format="csr")
    A1R = (Z1.T @ R).tocsr()
    A1R.sum_duplicates()
    ARR = np.ascontiguousarray((R.T @ R).toarray())
    slw = float(np.sum(np.log(w[w > 0]))) if w is not None else 0.0
    return CrossProducts(layout=layout, n=len(y), A11=A11, A1R=A1R, ARR=ARR, sum_log_weights=slw)
