"""The likelihood kernels p(y | theta) of a deconvolution, one per family, from a registry.

A kernel declares what the solver would otherwise ask by name: which family's
log density it evaluates (the densities themselves come from
:mod:`multilevel.family`, full constants included), whether the observations
carry standard errors or trial counts, where the mixing grid may lie, and the
default grid range for the data.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from multilevel.errors import ModelError
from multilevel.family import Family
from multilevel.family.registry import close_matches, get_family


@dataclass(frozen=True)
class Kernel:
    """How one family enters the NPMLE.

    ``scale`` is ``"se"`` (the observations carry standard errors), ``"trials"``
    (binomial trial counts) or ``None``; ``bounds`` is the interval the grid of
    mixing values must lie in; ``grid_range(y, trials)`` gives the default
    grid's (lo, hi); ``binnable``: continuous observations that may be binned
    (in units of their scale) when there are very many.
    """

    name: str
    scale: str | None
    bounds: tuple[float, float]
    grid_range: Callable[[np.ndarray, np.ndarray | None], tuple[float, float]]
    binnable: bool = False

    @property
    def family(self) -> Family:
        return get_family(self.name)

    def log_density(self, y: np.ndarray, scale: np.ndarray | None, grid: np.ndarray) -> np.ndarray:
        """The (rows x grid) matrix of log p(y_i | theta_j), full normalizing constants."""
        fam = self.family
        yc = np.asarray(y, float)[:, None]
        mu = np.asarray(grid, float)[None, :]
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.scale == "se":
                assert scale is not None
                out = fam.logpdf(yc, mu, np.ones_like(yc), (scale**2)[:, None])  # type: ignore[arg-type]
            elif self.scale == "trials":
                assert scale is not None
                k = scale[:, None]
                out = fam.logpdf(yc / k, mu, k, 1.0)
            else:
                out = fam.logpdf(yc, mu, np.ones_like(yc), 1.0)
        out = np.asarray(out, float)
        out[np.isnan(out)] = -np.inf  # 0 * log 0 at a boundary grid point that cannot produce y
        return out


def _data_range(y: np.ndarray, trials: np.ndarray | None) -> tuple[float, float]:
    return float(np.min(y)), float(np.max(y))


def _unit_range(y: np.ndarray, trials: np.ndarray | None) -> tuple[float, float]:
    return 0.0, 1.0


_KERNELS: dict[str, Kernel] = {}


def register_kernel(kernel: Kernel) -> Kernel:
    """Add a family to the NPMLE (its log density must be registered in :mod:`multilevel.family`)."""
    _KERNELS[kernel.name] = kernel
    return kernel


def get_kernel(family: str) -> Kernel:
    """The kernel of a family name; a clear error for a family the NPMLE does not take."""
    key = str(family).lower()
    if key not in _KERNELS:
        hint = close_matches(key, _KERNELS)
        raise ModelError(f"family={family!r} has no NPMLE kernel; use one of {sorted(_KERNELS)}{hint}")
    return _KERNELS[key]


register_kernel(Kernel("gaussian", "se", (-np.inf, np.inf), _data_range, binnable=True))
register_kernel(Kernel("poisson", None, (0.0, np.inf), _data_range))
register_kernel(Kernel("binomial", "trials", (0.0, 1.0), _unit_range))
