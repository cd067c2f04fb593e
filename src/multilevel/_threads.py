"""BLAS thread policy: one thread for small dense systems.

OpenBLAS's worker threads cost more than they save on matrices of a few hundred
rows (measured here: a PIRLS step on grouseticks, a 182 x 182 dense block, took
61 ms with two threads and 9 ms with one), while the dense Cholesky of a
1,159 x 1,159 block (InstEval) is 1.6x faster with two. Fits call
:func:`blas_threads` with the size of their dense block.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

SMALL_DENSE = 500


@contextmanager
def blas_threads(dense_size: int) -> Iterator[None]:
    """Limit BLAS to one thread inside the block when ``dense_size`` is small."""
    if dense_size >= SMALL_DENSE:
        yield
        return
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield
