"""JAX's settings for the package, in one place: double precision and the on-disk
compilation cache. Importing this module does not import JAX."""

from __future__ import annotations

import os
from typing import Any


def enable_x64_and_cache() -> None:
    """Double precision in JAX (the cross-products need it) and the compilation cache; set once.

    Compiled programs (samplers, nonlinear-model kernels) are kept on disk (JAX's
    persistent compilation cache) under ``$MULTILEVEL_JAX_CACHE`` or
    ``~/.cache/multilevel/jax``, so a model structure compiled in one session loads
    in the next instead of compiling again. Set ``MULTILEVEL_JAX_CACHE=0`` to turn
    this off; a cache directory the user has configured for JAX already is left alone.
    """
    import jax

    jax.config.update("jax_enable_x64", True)
    where = os.environ.get("MULTILEVEL_JAX_CACHE")
    if where == "0" or getattr(jax.config, "jax_compilation_cache_dir", None):
        return
    if where is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        where = os.path.join(base, "multilevel", "jax")
    try:
        os.makedirs(where, exist_ok=True)
    except OSError:
        return  # no writable cache: compile every session
    jax.config.update("jax_compilation_cache_dir", where)
    # programs that compile in a tenth of a second are not worth a file; the samplers
    # and the nonlinear models' kernels (0.5-4 s to compile) are
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.1)


def jax_device(kind: str) -> Any:
    """JAX's first device of ``kind`` (``"cpu"`` or ``"gpu"``), with double precision on;
    a :class:`~multilevel.errors.ModelError` saying what to install where JAX has none."""
    import jax

    from ..errors import ModelError

    jax.config.update("jax_enable_x64", True)
    try:
        devices = jax.devices(kind)
    except RuntimeError as exc:
        raise ModelError(
            f"device='{kind}': JAX finds no {kind.upper()} here ({exc}). On a machine with an NVIDIA "
            "GPU install JAX with CUDA (pip install 'multilevel[gpu]', or 'jax[cuda12]'), or fit "
            "with device='cpu'"
        ) from None
    return devices[0]
