"""BLAS thread policy: one thread for small dense systems, and for large ones on busy cores.

OpenBLAS's worker threads cost more than they save on matrices of a few hundred
rows (measured here: a PIRLS step on grouseticks, a 182 x 182 dense block, took
61 ms with two threads and 9 ms with one), while the dense Cholesky of a
1,159 x 1,159 block (InstEval) is 1.6x faster with two on idle cores. On cores
other processes keep busy the threads spin and wait for each other: the InstEval
ML fit took 1.3 s with two threads and 0.82 s with one beside two CPU-bound
processes (0.41 s and 0.55 s on a quiet machine). So a large block gets as many
threads as there are idle cores when the fit starts (the kernel's count of
runnable tasks, ``/proc/loadavg``), at least one; where that count cannot be
read, BLAS keeps its own setting. Fits call :func:`blas_threads` with the size of
their dense block. ``OPENBLAS_NUM_THREADS`` (or ``MKL_NUM_THREADS``) still caps
what BLAS may use.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SMALL_DENSE = 500
#: below this size one fit's BLAS calls run on one thread by themselves (OpenBLAS
#: threads a product only past 64^3 multiply-adds): a single fit does not set the
#: limit there (``tiny_as_is``), which costs more than such a fit's BLAS. Batched work
#: (many replicates in one product) still asks for one thread.
TINY_DENSE = 64
#: readings of the runnable-task count (1 ms apart) before a large block picks its threads
SAMPLES = 5

_CONTROLLER: list[Any] = []


def _controller() -> Any:
    """One threadpoolctl controller per process: finding the BLAS libraries reads
    the process's memory map (~3 ms), too slow to repeat on every small fit."""
    if not _CONTROLLER:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER.append(ThreadpoolController())
    return _CONTROLLER[0]


def _own_running() -> int:
    """This process's threads that are runnable now (at least the one reading)."""
    import os

    count = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat", encoding="ascii") as fh:
                state = fh.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        count += state == "R"
    return max(count, 1)


def idle_cores() -> int | None:
    """Cores this process may use that no other runnable task is using now, or None
    where the kernel does not say (no ``/proc/loadavg``)."""
    import os
    import time

    running = None
    try:
        # the fewest runnable tasks of other processes over a few readings (kernel threads
        # wake briefly, and this process's own BLAS threads spin on after a solve)
        for _ in range(SAMPLES):
            with open("/proc/loadavg", encoding="ascii") as fh:
                now = int(fh.read().split()[3].split("/")[0]) - _own_running() + 1
            running = now if running is None else min(running, now)
            time.sleep(0.001)
    except (OSError, ValueError, IndexError):
        return None
    if running is None:
        return None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores - max(running - 1, 0))  # the reading process is one of the runnable tasks


@contextmanager
def blas_threads(dense_size: int, *, tiny_as_is: bool = False) -> Iterator[None]:
    """One BLAS thread inside the block when ``dense_size`` is small; for a large block
    as many as there are idle cores (BLAS's own setting if that is unknown)."""
    if tiny_as_is and dense_size < TINY_DENSE:
        yield
        return
    if dense_size >= SMALL_DENSE:
        free = idle_cores()
        if free is None:
            yield
            return
        with _controller().limit(limits=free, user_api="blas"):
            yield
        return
    with _controller().limit(limits=1, user_api="blas"):
        yield
