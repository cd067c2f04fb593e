"""The binding function: auxiliary estimates on data simulated at given parameters.

Indirect inference compares the auxiliary model's estimates on the observed data
with their mean over ``S`` data sets simulated at candidate parameters. Every
candidate uses the same random numbers (replicate ``s`` always draws from the
stream seeded ``(seed, s)``), so the mean moves smoothly with the parameters and
finite differences of it are meaningful. The covariance of the estimates is taken
from a second, independent set of streams.

The simulations of several candidates go to the auxiliary model in one call, so
an auxiliary that can refit many responses at once (the batched LMM and GLMM
refits) fits them together.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelError

#: the streams of the covariance simulations start here (apart from the CRN streams)
OMEGA_STREAM = 1_000_003


@dataclass(frozen=True)
class Auxiliary:
    """The auxiliary model: the names of its statistics, their value on the observed
    data, and ``estimate(sims) -> (len(sims), k)`` (NaN rows where a fit failed)."""

    names: tuple[str, ...]
    observed: np.ndarray
    estimate: Callable[[Sequence[Any]], np.ndarray]
    label: str = "auxiliary"


class Binding:
    """Simulated auxiliary statistics at parameter points, common random numbers."""

    def __init__(
        self,
        simulate: Callable[[dict[str, float], np.random.Generator], Any],
        names: Sequence[str],
        auxiliary: Auxiliary,
        n_sim: int,
        seed: int,
    ) -> None:
        self.simulate = simulate
        self.names = tuple(names)
        self.auxiliary = auxiliary
        self.n_sim = int(n_sim)
        self.seed = int(seed)
        self.fits = 0  # auxiliary fits so far

    @property
    def k(self) -> int:
        return len(self.auxiliary.names)

    def _draw(self, theta: np.ndarray, streams: range) -> list[Any]:
        params = dict(zip(self.names, (float(t) for t in theta), strict=True))
        out = []
        for s in streams:
            rng = np.random.default_rng(np.random.SeedSequence([self.seed, s]))
            out.append(self.simulate(params, rng))
        return out

    def statistics(self, points: np.ndarray, streams: range | None = None) -> np.ndarray:
        """(P, S, k): the auxiliary estimates on the ``S`` simulations at each of the
        ``P`` points (rows of ``points``); one call of the auxiliary for all of them."""
        pts = np.atleast_2d(np.asarray(points, dtype=float))
        streams = range(self.n_sim) if streams is None else streams
        sims = [sim for theta in pts for sim in self._draw(theta, streams)]
        values = np.asarray(self.auxiliary.estimate(sims), dtype=float)
        if values.shape != (len(sims), self.k):
            raise ModelError(
                f"the auxiliary model returned {values.shape[-1] if values.ndim == 2 else values.size} "
                f"statistics for a simulated data set and {self.k} for the observed data; it must "
                "return the same statistics every time"
            )
        self.fits += len(sims)
        return values.reshape(pts.shape[0], len(streams), self.k)

    def omega_statistics(self, theta: np.ndarray, n: int) -> np.ndarray:
        """(n, k): estimates on ``n`` simulations at ``theta`` from streams apart from the
        common random numbers, for the covariance of the auxiliary estimates."""
        return self.statistics(theta[None], range(OMEGA_STREAM, OMEGA_STREAM + n))[0]


def mean_over_common(values: np.ndarray) -> tuple[np.ndarray, int]:
    """(P, k) means over the replicates that are finite at every point (so that the
    points keep common random numbers), and how many replicates were left out."""
    ok = np.all(np.isfinite(values), axis=(0, 2))
    if not ok.any():
        return np.full((values.shape[0], values.shape[2]), np.nan), int(ok.size)
    return values[:, ok, :].mean(axis=1), int((~ok).sum())
