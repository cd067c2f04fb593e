"""``indirect()``: estimate a simulator's parameters by matching an auxiliary model.

The auxiliary model is any fit of this package (its fixed effects, random-effect SDs
and covariances, residual SD), a formula fitted to the data, or any function of a
data set. When the simulator returns responses for the fit's rows, the simulated
responses of every evaluation are refitted together by the batched refits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ModelError


def _positive_int(value: Any, what: str, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ModelError(f"{what} must be an integer of at least {least}, got {value!r}")
    return int(value)


def _fit_auxiliary(fit: Any, workers: int | None) -> Any:
    """An auxiliary from a fit: its statistics on responses simulated for its rows."""
    from ..indirect_inference import Auxiliary
    from ..model.bootstrap import default_statistic, replicate_statistics
    from ..model.replicates import check_response, check_workers, refit_columns

    t0 = default_statistic(fit, correlations=False)
    threads = check_workers(workers)

    def estimate(sims: Sequence[Any]) -> np.ndarray:
        if isinstance(sims[0], pd.DataFrame):
            raise ModelError(
                "the simulator returned a data frame, but a fitted auxiliary model refits simulated "
                "responses: return the response (one value per row), or give auxiliary= as a "
                "function of a data frame"
            )
        Y = np.column_stack([check_response(fit, y, "the simulated response") for y in sims])
        return replicate_statistics(fit, refit_columns(fit, Y, threads), correlations=False)

    label = f"auxiliary {type(fit).__name__}: {fit.spec.formula}"
    return Auxiliary(tuple(str(i) for i in t0.index), t0.to_numpy(dtype=float), estimate, label)


def _callable_auxiliary(fn: Callable[[Any], Any], data: Any) -> Any:
    """An auxiliary from a function of a data set returning numbers (named or not)."""
    from ..indirect_inference import Auxiliary

    def values(out: Any) -> np.ndarray:
        if isinstance(out, Mapping):
            out = pd.Series(out)
        arr = np.atleast_1d(np.asarray(out, dtype=float))
        if arr.ndim != 1:
            raise ModelError(f"the auxiliary function must return a vector of numbers, got shape {arr.shape}")
        return arr

    first = fn(data)
    try:
        obs = values(first)
    except (TypeError, ValueError):
        raise ModelError(
            f"the auxiliary function must return numbers (a vector, Series or dict), got {first!r:.80}"
        ) from None
    if not np.all(np.isfinite(obs)):
        raise ModelError("the auxiliary function returned non-finite statistics on the observed data")
    names = (
        tuple(str(i) for i in first.index)
        if isinstance(first, pd.Series)
        else tuple(str(k) for k in first)
        if isinstance(first, Mapping)
        else tuple(f"t{i + 1}" for i in range(obs.size))
    )

    def estimate(sims: Sequence[Any]) -> np.ndarray:
        out = np.full((len(sims), obs.size), np.nan)
        for i, sim in enumerate(sims):
            try:
                v = values(fn(sim))
            except (ModelError, ValueError, np.linalg.LinAlgError, FloatingPointError):
                continue
            if v.size != obs.size:
                raise ModelError(
                    f"the auxiliary function returned {v.size} statistics for a simulated data set and "
                    f"{obs.size} for the observed data; it must return the same statistics every time"
                )
            out[i] = v
        return out

    return Auxiliary(names, obs, estimate, getattr(fn, "__name__", "auxiliary function"))


def _auxiliary(auxiliary: Any, data: Any, family: Any, workers: int | None) -> Any:
    """The auxiliary model from a formula, a fit or a function of a data set."""
    if isinstance(auxiliary, str):
        from .core import fit

        return _fit_auxiliary(fit(auxiliary, data, family=family), workers)
    if hasattr(auxiliary, "_refit_responses") and hasattr(auxiliary, "spec"):
        return _fit_auxiliary(auxiliary, workers)
    if callable(auxiliary):
        return _callable_auxiliary(auxiliary, data)
    raise ModelError(
        "auxiliary must be a formula, a fit of this package, or a function of a data set, "
        f"got {type(auxiliary).__name__}"
    )


def _simulate(
    simulator: Callable[..., Any], data: Any
) -> Callable[[dict[str, float], np.random.Generator], Any]:
    def run(params: dict[str, float], rng: np.random.Generator) -> Any:
        out = simulator(params, data, rng)
        if out is None:
            raise ModelError(
                "the simulator returned None: it must return the simulated response or data frame"
            )
        return out

    return run


def indirect(
    simulator: Callable[[dict[str, float], Any, np.random.Generator], Any],
    auxiliary: Any,
    data: Any,
    start: Mapping[str, float],
    *,
    n_sim: int = 10,
    n_omega: int = 200,
    seed: int = 0,
    bounds: Mapping[str, tuple] | None = None,
    family: Any = "gaussian",
    workers: int | None = None,
    tol: float = 1e-6,
    max_iter: int = 50,
) -> Any:
    """Estimate the parameters of ``simulator`` by indirect inference.

    Parameters
    ----------
    simulator:
        ``simulator(params, data, rng)``: a data set simulated from the model at
        ``params`` (a dict, the names of ``start``) with the random numbers of ``rng``
        (a NumPy ``Generator``; draw every random number from it, so that the same
        ``rng`` gives the same data). It returns the response (one value per row of
        ``data``) when ``auxiliary`` is a formula or a fit, else what ``auxiliary``
        takes (usually a data frame like ``data``).
    auxiliary:
        A formula (fitted to ``data`` with ``family=``), a fit of this package (its
        fixed effects, random-effect SDs and covariances and residual SD are the
        statistics), or a function of a data set returning numbers.
    data:
        The observed data.
    start:
        ``{name: value}``: the parameters and where the search starts.
    n_sim:
        Simulations per evaluation (common random numbers across evaluations).
    n_omega:
        Simulations for the covariance of the auxiliary statistics (the weight matrix
        and the standard errors), at the start and at the estimates.
    seed, bounds, workers, tol, max_iter:
        The random streams; ``{name: (lower, upper)}`` box bounds (None for none);
        threads for the refits; the stop (the Gauss-Newton step in SE units,
        squared) and the iteration limit.

    Returns
    -------
    :class:`multilevel.indirect_inference.IndirectResult`: estimates, sandwich SEs
    (Gourieroux-Monfort-Renault, with the ``1 + 1/n_sim`` factor), the J test of the
    overidentifying restrictions, the auxiliary statistics observed and simulated.
    """
    from ..indirect_inference import Binding, Settings, estimate

    if not callable(simulator):
        raise ModelError(
            f"simulator must be a function simulator(params, data, rng), got {type(simulator).__name__}"
        )
    if not isinstance(start, Mapping) or not start:
        raise ModelError("start must be a dict {parameter name: starting value}")
    if not all(isinstance(k, str) for k in start):
        raise ModelError(f"start's keys must be parameter names (strings), got {list(start)!r}")
    names = list(start)
    try:
        values = [float(v) for v in start.values()]
    except (TypeError, ValueError):
        raise ModelError(f"start must map parameter names to numbers, got {dict(start)!r}") from None
    if not all(np.isfinite(values)):
        raise ModelError(f"start must be finite numbers, got {dict(start)!r}")
    if not (isinstance(tol, (int, float)) and np.isfinite(tol) and tol > 0):
        raise ModelError(f"tol must be a positive number, got {tol!r}")
    n_sim = _positive_int(n_sim, "n_sim")
    aux = _auxiliary(auxiliary, data, family, workers)
    n_omega = _positive_int(n_omega, "n_omega", least=len(aux.names) + 2)
    binding = Binding(_simulate(simulator, data), names, aux, n_sim, _positive_int(seed, "seed", least=0))
    settings = Settings(max_iter=_positive_int(max_iter, "max_iter"), tol=float(tol), n_omega=n_omega)
    return estimate(binding, {n: float(start[n]) for n in names}, bounds=bounds, settings=settings)
