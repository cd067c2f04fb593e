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
from typing import Any

SMALL_DENSE = 500

_CONTROLLER: list[Any] = []


def _controller() -> Any:
    """One threadpoolctl controller per process: finding the BLAS libraries reads
    the process's memory map (~3 ms), too slow to repeat on every small fit."""
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


@contextmanager
def blas_threads(dense_size: int) -> Iterator[None]:
    """Limit BLAS to one thread inside the block when ``dense_size`` is small."""
    if dense_size >= SMALL_DENSE:
        yield
        return
    with _controller().limit(limits=1, user_api="blas"):
        yield
