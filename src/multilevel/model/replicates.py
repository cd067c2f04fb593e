"""What every engine of many refits returns, and the checks of a new response.

:class:`ReplicateFits` holds one row per response: the estimates, the criterion
(-2 log-likelihood, or the REML criterion) and the status of each fit. The LMM
and GLMM engines (:mod:`multilevel.lmm.refits`, :mod:`multilevel.glmm.refits`)
fill it; the bootstrap, the bootstrap test and ``fit_many`` read it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelError
from ..optim.optimize import SINGULAR_TOL


def check_response(fit: Any, y: Any, what: str = "the new response") -> np.ndarray:
    """``y`` as a float vector over the fit's rows (one as long as the input table is
    cut to the rows the fit used); finite values only."""
    d = fit.design
    try:
        v = np.asarray(y, dtype=float)
    except (TypeError, ValueError):
        raise ModelError(f"{what} must be numbers, got {type(y).__name__}") from None
    if v.ndim != 1:
        raise ModelError(f"{what} must be one vector, got shape {v.shape}")
    if v.size != d.n and d.rows is not None and v.size == d.n_input:
        v = v[d.rows]
    if v.size != d.n:
        raise ModelError(f"{what} has {v.size} values; the fit used {d.n} rows (give one value per row used)")
    bad = ~np.isfinite(v)
    if bad.any():
        raise ModelError(f"{what} has {int(bad.sum())} missing or non-finite values; refits need every row")
    return v


@dataclass(frozen=True)
class ReplicateFits:
    """Per response (column of the responses): theta, beta, sigma, the criterion, and
    whether the fit converged and is singular; ``batched``: how many the batch fitted."""

    theta: np.ndarray  # (R, k)
    beta: np.ndarray  # (R, p)
    sigma: np.ndarray  # (R,)
    criterion: np.ndarray  # (R,)
    converged: np.ndarray  # (R,)
    singular: np.ndarray  # (R,)
    batched: int

    re_scale: np.ndarray | None = None  # the scale of theta (R,): sigma unless given

    @property
    def size(self) -> int:
        return int(self.sigma.shape[0])

    @property
    def scale(self) -> np.ndarray:
        return self.sigma if self.re_scale is None else self.re_scale


def singular_rows(spec: Any, theta: np.ndarray) -> np.ndarray:
    """Per row of theta (R, k): an SD's theta below lme4's singularity tolerance."""
    diag = np.isfinite(spec.theta_map.lower_bounds)
    return np.any(theta[:, diag] < SINGULAR_TOL, axis=1)


def check_workers(workers: Any) -> int:
    """Threads for many refits: a positive integer, or None for every CPU (at most 8)."""
    import os

    if workers is None:
        return max(1, min(os.cpu_count() or 1, 8))
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ModelError(
            f"workers must be a positive integer (threads) or None for every CPU, got {workers!r}"
        )
    return int(workers)


def refit_columns(fit: Any, Y: np.ndarray, workers: int = 1) -> ReplicateFits:
    """``fit._refit_responses`` on the columns of ``Y``, split over ``workers`` threads
    (the batched engines spend their time in NumPy, which releases the GIL). Every
    response's fit is its own, so the split does not change the answers."""
    R = Y.shape[1]
    chunks = min(workers, max(R // 64, 1))
    if chunks <= 1:
        return fit._refit_responses(Y)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(chunks) as ex:
        parts = list(ex.map(fit._refit_responses, np.array_split(Y, chunks, axis=1)))
    cat = {f: np.concatenate([getattr(p, f) for p in parts]) for f in ("theta", "beta", "sigma", "criterion")}
    return ReplicateFits(
        theta=cat["theta"],
        beta=cat["beta"],
        sigma=cat["sigma"],
        criterion=cat["criterion"],
        converged=np.concatenate([p.converged for p in parts]),
        singular=np.concatenate([p.singular for p in parts]),
        batched=sum(p.batched for p in parts),
        re_scale=None if parts[0].re_scale is None else np.concatenate([p.re_scale for p in parts]),
    )
