"""Error strata and the sequential sums of squares inside each, as R's ``aov`` computes them.

R rotates the response and the treatment columns by ``Q'`` of the QR of the error
model matrix ``[1, term_1, term_2, ...]``; the rows belonging to each error term form
its stratum, the rows past the error rank the ``Within`` stratum, and ``lm.fit`` on
each stratum's rows gives its type I table. The sums of squares depend only on the
stratum's space (the span of the cells of terms ``1..k`` orthogonal to that of terms
``1..k-1``), not on the basis, so each stratum here is an orthonormal basis of that
space (or, for ``Within``, the projection off the whole error space) and the
tables are R's whatever the contrasts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

# R's aov drops treatment columns whose projection onto a stratum has squared norm at
# most 1e-5 (absolute), and lm.fit's QR calls a column aliased below 1e-7 of its norm
DROP_SS = 1e-5
ALIAS_TOL = 1e-7


@dataclass(frozen=True)
class Stratum:
    """One error stratum: its name, its dimension, and its orthonormal basis.

    ``basis`` is ``(n, df)``; None for ``Within``, whose coordinates are the rows
    themselves after projecting off ``error_basis`` (``(n, rank of the error model)``).
    """

    name: str
    df: int
    basis: np.ndarray | None
    error_basis: np.ndarray | None = None

    def coordinates(self, M: np.ndarray) -> np.ndarray:
        """``M`` (n rows) in this stratum's coordinates: ``B'M``, or ``M`` off the error space."""
        if self.basis is not None:
            return self.basis.T @ M
        if self.error_basis is None:
            return M
        E = self.error_basis
        return M - E @ (E.T @ M)


@dataclass(frozen=True)
class StratumTable:
    """The type I table of one stratum.

    ``terms`` are ``(term, df, sum of squares)`` in formula order (zero-df terms left
    out); ``fitted`` an orthonormal basis, in stratum coordinates, of the treatment
    columns fitted there (for the residual projector of the expected mean squares).
    """

    stratum: Stratum
    terms: tuple[tuple[str, int, float], ...]
    resid_df: int
    resid_ss: float
    fitted: np.ndarray


def indicator(codes: np.ndarray, n_levels: int) -> np.ndarray:
    """The ``(n, n_levels)`` 0/1 matrix of the rows' level codes."""
    Z = np.zeros((codes.shape[0], n_levels))
    Z[np.arange(codes.shape[0]), codes] = 1.0
    return Z


def error_strata(names: Sequence[str], cells: Sequence[np.ndarray], n: int) -> list[Stratum]:
    """The strata of the error model ``1 + term_1 + term_2 + ...``, then ``Within``.

    ``cells[k]`` holds each row's cell code of error term ``k`` (0..L-1). A term that
    adds no dimension to the terms before it gives no stratum, as in R. The intercept
    stratum is first, named ``"(Intercept)"``.
    """
    total = np.full((n, 1), 1.0 / np.sqrt(n))
    strata = [Stratum("(Intercept)", 1, total)]
    for name, codes in zip(names, cells, strict=True):
        Z = indicator(codes, int(codes.max()) + 1)
        for _ in range(2):  # twice is enough (Kahan-Parlett)
            Z = Z - total @ (total.T @ Z)
        U, s, _ = np.linalg.svd(Z, full_matrices=False)
        keep = s > 1e-8 * max(1.0, float(s.max(initial=0.0)))
        if not keep.any():
            continue
        B = U[:, keep]
        strata.append(Stratum(name, B.shape[1], B))
        total = np.hstack([total, B])
    if total.shape[1] < n:
        strata.append(Stratum("Within", n - total.shape[1], None, total))
    return strata


def stratum_table(stratum: Stratum, y: np.ndarray, X: np.ndarray, assign: Sequence[str]) -> StratumTable:
    """Sequential (type I) sums of squares of the treatment columns within ``stratum``.

    ``assign[j]`` names the term of column ``j`` of ``X``. Columns whose projection is
    negligible are dropped and aliased columns skipped, as R's ``aov`` and ``lm.fit``
    do, so a term confounded with a coarser stratum appears only there.
    """
    z = stratum.coordinates(y)
    W = stratum.coordinates(X)
    m = z.shape[0]
    basis: list[np.ndarray] = []
    ss: dict[str, float] = {}
    df: dict[str, int] = {}
    for j in range(W.shape[1]):
        w = W[:, j]
        norm0 = float(np.sqrt(w @ w))
        if norm0 * norm0 <= DROP_SS:
            continue
        v = w.copy()
        if basis:
            Q = np.column_stack(basis)
            for _ in range(2):
                v = v - Q @ (Q.T @ v)
        norm = float(np.sqrt(v @ v))
        if norm < ALIAS_TOL * norm0:
            continue
        q = v / norm
        basis.append(q)
        term = assign[j]
        ss[term] = ss.get(term, 0.0) + float(q @ z) ** 2
        df[term] = df.get(term, 0) + 1
    fitted = np.column_stack(basis) if basis else np.zeros((m, 0))
    resid = z - fitted @ (fitted.T @ z)
    rows = tuple((t, df[t], ss[t]) for t in dict.fromkeys(assign) if t in df)
    return StratumTable(stratum, rows, stratum.df - len(basis), float(resid @ resid), fitted)


def residual_trace(table: StratumTable, Z: np.ndarray | None) -> float:
    """``tr(R Z Z')`` with ``R`` the projector onto the stratum's residual space.

    ``Z`` None stands for the identity (the residual variance component), whose trace
    is the residual df.
    """
    if Z is None:
        return float(table.resid_df)
    if table.stratum.basis is None and table.stratum.error_basis is not None:
        return 0.0  # an error term's cells lie in the error space, which Within is orthogonal to
    C = table.stratum.coordinates(Z)
    F = table.fitted.T @ C
    return float(np.sum(C * C) - np.sum(F * F))
