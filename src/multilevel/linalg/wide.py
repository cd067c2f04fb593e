"""Wide crossed designs: the cross-products and the factor without a dense ``Z'Z`` of the rest.

MovieLens' model ``rating ~ 1 + (1 | user) + (1 | movie)`` has users as the first
(diagonal) block and a rest of 16,034 movies and 27 million ratings. The rest's own
cross-products ``Z_2'Z_2`` are diagonal (one movie per rating) and only the rest's rows
for ``X`` and ``y`` are dense, so :class:`RestBorder` keeps the diagonal and those rows
(the dense ``(m, m)`` would be 2 GB); ``A1R`` stays sparse.
:func:`~multilevel.linalg.crossprod.scalar_crossprods` computes them in compiled passes
over the rows' codes (:mod:`~multilevel.linalg.scalar_pass`), without the sparse ``Z``
matrices of the general builder. :func:`wide_factor_block` forms the block once per
evaluation, in packed storage (:mod:`~multilevel.linalg.rfp`: one triangle, half the
memory of the dense block): the scaled diagonal and border, minus the Schur update
scattered into it (:class:`~multilevel.linalg.scatter_schur.ScatterSchur`); its
Cholesky factor is then computed in the same memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelError

#: the rest's size from which a single scalar rest block keeps its cross-products compact
WIDE_MIN_REST = 4000


@dataclass(frozen=True)
class RestBorder:
    """``ARR`` of a rest that is one scalar grouping block then ``X`` and ``y``: the
    block's diagonal and the dense rows of ``X`` and ``y`` (``border``, (p + 1, m)).

    Indexing gives the entries of the dense matrix it stands for (``ARR[i, j]``,
    ``ARR[np.ix_(rows, cols)]``, slices); what needs the whole dense matrix says so."""

    diag: np.ndarray  # (mz,)
    border: np.ndarray  # (p + 1, m): rows mz.. of ARR

    @property
    def mz(self) -> int:
        return int(self.diag.size)

    @property
    def shape(self) -> tuple[int, int]:
        m = self.mz + self.border.shape[0]
        return (m, m)

    def _index(self, k: Any, size: int) -> tuple[np.ndarray, bool]:
        if isinstance(k, slice):
            return np.arange(size)[k], True
        return np.asarray(k), False

    def __getitem__(self, key: Any) -> Any:
        if not (isinstance(key, tuple) and len(key) == 2):
            raise TypeError("index a RestBorder by (rows, columns)")
        m = self.shape[0]
        (i, si), (j, sj) = self._index(key[0], m), self._index(key[1], m)
        if (si and j.ndim == 1) or (sj and i.ndim == 1):  # a slice with an array: outer, as NumPy
            i, j = i[:, None], j[None, :]
        i, j = np.broadcast_arrays(i, j)
        lo, hi = np.minimum(i, j), np.maximum(i, j)
        out = np.zeros(i.shape)
        inb = hi >= self.mz
        out[inb] = self.border[hi[inb] - self.mz, lo[inb]]
        dg = ~inb & (i == j)
        out[dg] = self.diag[i[dg]]
        return out[()] if out.ndim == 0 else out

    def dense(self) -> np.ndarray:
        """The whole ``(m, m)`` matrix (small designs and tests)."""
        m, mz = self.shape[0], self.mz
        out = np.zeros((m, m))
        out[np.arange(mz), np.arange(mz)] = self.diag
        out[mz:, :] = self.border
        out[:, mz:] = self.border.T
        return out

    def copy(self) -> Any:
        raise _too_wide(self.shape[0])

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise _too_wide(self.shape[0])


def _too_wide(m: int) -> ModelError:
    return ModelError(
        f"this needs the dense {m} x {m} cross-products of a wide crossed design "
        f"({m * m * 8 / 2**30:.1f} GiB), which the fit does not form; the estimates, their "
        "standard errors and the random effects are available, this method is not for a design so wide"
    )


def applies(n_levels: Sequence[int], qs: Sequence[int]) -> bool:
    """Whether a design takes this path: two scalar grouping blocks, the second (the
    rest) at least :data:`WIDE_MIN_REST` levels."""
    return len(n_levels) == 2 and tuple(qs) == (1, 1) and n_levels[1] >= WIDE_MIN_REST


def wide_factor_block(border: RestBorder, s: np.ndarray, form: Any, W1: np.ndarray) -> Any:
    """The dense block to factor, ``Lambda'ARR Lambda + I_Z - update``, in packed storage
    (a :class:`~multilevel.linalg.rfp.PackedBlock`: half the memory of the dense block):
    ``s`` the rest's scale (theta on the block, 1 on X and y), ``W1`` the first block's
    Schur weights, ``form`` the update (scattered, dense, or a sparse pattern)."""
    from .rfp import PackedBlock, position
    from .scatter_schur import ScatterSchur

    m, mz = border.shape[0], border.mz
    block = PackedBlock(np.zeros(mz * (mz + 1) // 2), np.zeros((m - mz, m)), mz)
    idx = np.arange(mz)
    block.zz[position(idx, idx, mz)] = s[:mz] * s[:mz] * border.diag + 1.0
    block.border[:, :mz] = border.border[:, :mz] * s[:mz][None, :]
    block.border[:, mz:] = border.border[:, mz:]
    if isinstance(form, ScatterSchur):
        form.update_packed(-W1[:, 0, 0], s, block)
        return block
    if form.dense:  # dense BLAS (few first-block levels): the whole update
        U = form.update(W1) * s[:, None] * s[None, :]
        r, c = np.tril_indices(mz)
        block.zz[position(r, c, mz)] -= U[r, c]
        block.border -= U[mz:, :]
        return block
    # the sparse pattern's update at its targets (i <= j: the upper triangle of C order)
    i, j = np.divmod(form.targets, m)
    v = form.update(W1) * s[i] * s[j]
    inz = j < mz
    block.zz[position(j[inz], i[inz], mz)] -= v[inz]
    block.border[j[~inz] - mz, i[~inz]] -= v[~inz]
    return block
