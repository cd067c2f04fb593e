"""One indirect-inference estimate: the stages chained.

start -> Omega at the start -> minimize -> Omega at that estimate -> minimize again
-> Omega at the final estimate -> sandwich covariance and J test -> the record.
"""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..errors import ConvergenceWarning, ModelError, warn
from .binding import Binding
from .estimate import Bounds, Settings, covariance, j_test, minimize, omega, weight
from .result import IndirectResult


def bounds_of(names: tuple[str, ...], start: np.ndarray, bounds: Mapping[str, tuple] | None) -> Bounds:
    """Box bounds from ``{name: (lower, upper)}`` (None for no bound)."""
    lower, upper = np.full(len(names), -np.inf), np.full(len(names), np.inf)
    if bounds is not None and not isinstance(bounds, Mapping):
        raise ModelError(f"bounds must be a dict {{name: (lower, upper)}}, got {type(bounds).__name__}")
    for key, pair in (bounds or {}).items():
        if key not in names:
            raise ModelError(
                f"bounds name {key!r}, which is not a parameter (parameters: {', '.join(names)})"
            )
        try:
            lo, hi = pair
        except (TypeError, ValueError):
            raise ModelError(f"bounds[{key!r}] must be a pair (lower, upper), got {pair!r}") from None
        i = names.index(key)
        try:
            lower[i] = -np.inf if lo is None else float(lo)
            upper[i] = np.inf if hi is None else float(hi)
        except (TypeError, ValueError):
            raise ModelError(f"bounds[{key!r}] = {pair!r}: the bounds must be numbers or None") from None
        if not lower[i] < upper[i]:
            raise ModelError(f"bounds[{key!r}] = {pair!r}: the lower bound must be below the upper")
        if not lower[i] <= start[i] <= upper[i]:
            raise ModelError(f"the start of {key!r} ({start[i]:g}) is outside its bounds {pair!r}")
    return Bounds(lower, upper)


def estimate(
    binding: Binding,
    start: Mapping[str, float],
    *,
    bounds: Mapping[str, tuple] | None = None,
    settings: Settings | None = None,
) -> IndirectResult:
    """Estimate the simulator's parameters by the two-step efficient indirect inference."""
    settings = settings or Settings()
    t0 = time.perf_counter()
    names = binding.names
    theta0 = np.array([float(start[n]) for n in names])
    box = bounds_of(names, theta0, bounds)
    aux = binding.auxiliary
    obs = np.asarray(aux.observed, dtype=float)
    if binding.k < len(names):
        raise ModelError(
            f"the auxiliary model gives {binding.k} statistics for {len(names)} parameters: it needs at "
            "least as many statistics as parameters (use a richer auxiliary model)"
        )
    W = weight(omega(binding, theta0, settings.n_omega), aux.names)
    first = minimize(binding, obs, W, theta0, box, settings)
    W = weight(omega(binding, first.theta, settings.n_omega), aux.names)
    est = minimize(binding, obs, W, first.theta, box, settings)
    Omega = omega(binding, est.theta, settings.n_omega)
    V = covariance(est, W, Omega, binding.n_sim)
    J, df, p = j_test(est, Omega, W, binding.n_sim, len(names))
    finite = bool(np.all(np.isfinite(est.theta)) and np.all(np.isfinite(V)))
    converged = est.converged and finite
    if not converged:
        why = est.message if finite else "a non-finite estimate or covariance"
        warn(
            f"indirect inference did not converge ({why}): try another start or more simulations",
            ConvergenceWarning,
        )
    idx = pd.Index(names)
    stats = pd.Index(aux.names)
    return IndirectResult(
        estimate=pd.Series(est.theta, index=idx),
        vcov=pd.DataFrame(V, index=idx, columns=idx),
        observed=pd.Series(obs, index=stats),
        simulated=pd.Series(obs - est.residual, index=stats),
        omega=pd.DataFrame(Omega, index=stats, columns=stats),
        J=J,
        J_df=df,
        J_p=p,
        converged=converged,
        message=est.message,
        iterations=first.iterations + est.iterations,
        n_sim=binding.n_sim,
        n_omega=settings.n_omega,
        seed=binding.seed,
        auxiliary_fits=binding.fits,
        dropped=est.dropped,
        seconds=time.perf_counter() - t0,
        auxiliary=aux.label,
    )
