"""Settings records for fitting and sampling: what lme4's ``lmerControl`` and
brms's sampler arguments hold, validated once, passed down explicitly.

No stage reads an environment variable that another stage wrote: the command
line builds a :class:`FitControl` just as a Python caller does.

>>> FitControl(optimizer="lbfgsb").optimizer
'lbfgsb'
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import ModelError

OPTIMIZERS = ("auto", "bobyqa", "lbfgsb")
DEVICES = ("cpu", "gpu")
BACKENDS = ("auto", "numpy", "jax")


def _check_bool(name: str, value: object, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if not isinstance(value, bool):
        want = "True, False or None" if optional else "True or False"
        raise ModelError(f"{name} must be {want}, got {value!r}")


#: the default time limit of a fit with fewer than SMALL_MODEL_ROWS rows
SMALL_MODEL_SECONDS = 6.0
SMALL_MODEL_ROWS = 1000


@dataclass(frozen=True)
class FitControl:
    """How a likelihood fit runs.

    Parameters
    ----------
    optimizer:
        Linear mixed models: ``"auto"`` (default: BFGS on the analytic gradient
        for a model with one grouping block, BOBYQA otherwise), ``"bobyqa"``
        (NLopt's BOBYQA, derivative free, lme4's default) or ``"lbfgsb"`` (SciPy's
        L-BFGS-B on the analytic gradient).
        GLMMs choose their optimizer themselves (BOBYQA, then the gradient path).
    compiled_kernels:
        GLMMs: run the row passes of penalized IRLS through the Numba kernels
        (~1.3x faster iterations, ~0.5 s to start Numba once per process).
        ``None``: on, unless the environment variable ``MULTILEVEL_NUMBA=0`` is set
        (a user's default, read here and nowhere else).
    max_seconds:
        The time the optimizers may take; past it the fit stops with
        ``converged=False`` and a warning. ``None`` (default): 6 seconds for
        models of fewer than 1,000 rows, unlimited for larger ones.
    device:
        Linear mixed models: where the criterion is evaluated. ``"cpu"`` (default);
        ``"gpu"``: the JAX backend of :mod:`multilevel.linalg` on JAX's first GPU, in
        double precision (JAX with CUDA: ``pip install 'multilevel[gpu]'``).
    backend:
        Linear mixed models: ``"auto"`` (default: NumPy and LAPACK on the CPU, JAX on a
        GPU), ``"numpy"`` or ``"jax"`` (JAX on the CPU runs what a GPU would run).
        On JAX, ``optimizer="auto"`` is L-BFGS-B on ``jax.grad``, or BOBYQA for a
        wide crossed design (whose JAX factor has no exact gradient).
    """

    optimizer: str = "auto"
    compiled_kernels: bool | None = None
    max_seconds: float | None = None
    device: str = "cpu"
    backend: str = "auto"

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ModelError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        _check_bool("compiled_kernels", self.compiled_kernels, optional=True)
        m = self.max_seconds
        if m is not None and (isinstance(m, bool) or not isinstance(m, (int, float)) or not m > 0):
            raise ModelError(f"max_seconds must be a positive number of seconds or None, got {m!r}")
        if self.device not in DEVICES:
            raise ModelError(f"device must be one of {DEVICES}, got {self.device!r}")
        if self.backend not in BACKENDS:
            raise ModelError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.device == "gpu" and self.backend == "numpy":
            raise ModelError(
                "backend='numpy' runs on the CPU; device='gpu' runs the JAX backend: drop backend= "
                "or set backend='jax'"
            )

    @property
    def linalg_backend(self) -> str:
        """The array backend of the LMM criterion: ``"numpy"`` or ``"jax"``."""
        if self.backend == "auto":
            return "jax" if self.device == "gpu" else "numpy"
        return self.backend

    def time_limit(self, nobs: int) -> float | None:
        """Seconds the optimizers of a fit to ``nobs`` rows may take (None: no limit)."""
        if self.max_seconds is not None:
            return float(self.max_seconds)
        return SMALL_MODEL_SECONDS if nobs < SMALL_MODEL_ROWS else None

    @property
    def use_compiled_kernels(self) -> bool:
        if self.compiled_kernels is not None:
            return self.compiled_kernels
        return os.environ.get("MULTILEVEL_NUMBA", "1") != "0"


def _positive_int(name: str, value: object, *, zero: bool = False) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and (value >= 0 if zero else value >= 1)
    if not ok:
        kind = "a non-negative" if zero else "a positive"
        raise ModelError(f"{name} must be {kind} integer, got {value!r}")


@dataclass(frozen=True)
class SampleControl:
    """How the NUTS sampler runs (brms's ``chains``, ``iter``, ``warmup``, ``control``).

    Parameters
    ----------
    chains, draws, warmup:
        Chains (run one after another in one compiled program), kept draws and
        warmup draws per chain.
    seed:
        Seed of the sampler's random numbers.
    progress:
        Show a progress bar while sampling.
    target_accept:
        NUTS target acceptance probability; raise it (0.95) if there are divergences.
    max_tree_depth:
        NUTS maximum tree depth.
    """

    chains: int = 4
    draws: int = 1000
    warmup: int = 1000
    seed: int = 0
    progress: bool = True
    target_accept: float = 0.8
    max_tree_depth: int = 10

    def __post_init__(self) -> None:
        import numbers

        for name in ("chains", "draws", "max_tree_depth"):
            value = getattr(self, name)
            if isinstance(value, numbers.Integral) and not isinstance(value, bool):
                object.__setattr__(self, name, int(value))
            _positive_int(name, getattr(self, name))
        if isinstance(self.warmup, numbers.Integral) and not isinstance(self.warmup, bool):
            object.__setattr__(self, "warmup", int(self.warmup))
        _positive_int("warmup", self.warmup, zero=True)
        if isinstance(self.seed, numbers.Integral) and not isinstance(self.seed, bool):
            object.__setattr__(self, "seed", int(self.seed))
        _positive_int("seed", self.seed, zero=True)
        _check_bool("progress", self.progress)
        ta = self.target_accept
        if isinstance(ta, bool) or not isinstance(ta, (int, float)) or not 0 < ta < 1:
            raise ModelError(f"target_accept must be in (0, 1), got {ta!r}")


def time_limit_message(seconds: float | None, tips: str = "a simpler random-effects structure, ") -> str:
    """The warning of a fit whose optimizer stopped at its time limit: what stopped and
    what to try (``tips``, each ending in ", "), then a longer limit."""
    return (
        f"the optimizer stopped at the fit's time limit ({seconds:g} s) before it converged; the "
        f"estimates are where it stopped. Try {tips}or a longer limit (control=FitControl(max_seconds=...))"
    )
