"""The one-block LMM kernels (:mod:`multilevel.linalg.one_block`) interpreted or compiled.

A process's first small fits run the kernels interpreted (batched NumPy):
starting Numba and loading the compiled kernels from its disk cache costs
~0.3 s once per process, a hundred such fits. From the ``HOT_FITS``-th
one-block fit of the process on (and for every fit once Numba is loaded, or a
large one) they run compiled: the same file is executed a second time as its
own module with Numba's ``njit`` as its decorator, and cached on disk by Numba
like the other kernels (:mod:`multilevel.linalg.kernels`).
"""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from . import one_block

#: the one-block fits of a process that run interpreted before the kernels are compiled
HOT_FITS = 10
#: a model whose per-level work (levels x q^3) is above this runs compiled at once
#: (interpreted, its fit would cost more than starting Numba)
INTERPRETED_MAX_WORK = 200_000

_COMPILED: list[ModuleType] = []
_FITS = [0]


def compiled() -> ModuleType:
    """:mod:`multilevel.linalg.one_block` executed with Numba's ``njit`` (once per process)."""
    if not _COMPILED:
        from numba import njit

        name = __name__ + "_njit"
        spec = importlib.util.spec_from_file_location(name, one_block.__file__)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        module.__dict__["_KERNEL_DECORATOR"] = njit(cache=True, nogil=True)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        _COMPILED.append(module)
    return _COMPILED[0]


def loaded() -> ModuleType | None:
    """The compiled kernels if this process has them already, else None."""
    return _COMPILED[0] if _COMPILED else None


def kernels(work: int, compile: bool | None = None) -> ModuleType:
    """The kernels for one fit of ``work`` (levels x q^3): compiled or interpreted.

    ``compile``: ``None`` decides as above; ``True`` or ``False`` forces.
    """
    _FITS[0] += 1
    if compile is None:
        compile = _FITS[0] >= HOT_FITS or "numba" in sys.modules or work > INTERPRETED_MAX_WORK
    return compiled() if compile else one_block
