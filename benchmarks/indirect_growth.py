"""A growth process whose likelihood is intractable, for indirect inference.

Trees grow along a logistic curve in log size with a tree-level log asymptote
``a_i ~ N(mu, tau^2)``, midpoint ``mid`` and time scale ``scale`` (the last
two SDs and the scale are estimated on the log scale); on top, the log
size wanders by a stationary AR(1) process with SD ``omega`` and lag-one correlation
``PHI`` (serially correlated growth shocks). The likelihood needs an integral over
each tree's asymptote and its whole AR path through a nonlinear mean; simulating is
trivial. The auxiliary model is a linear mixed model of the log sizes: a cubic in
time with a random intercept and slope per tree.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

PHI = 0.6
#: the SDs and the time scale enter on the log scale (Wald intervals there are better)
TRUTH = {
    "mu": 3.0,
    "log_tau": math.log(0.3),
    "mid": 4.0,
    "log_scale": math.log(1.5),
    "log_omega": math.log(0.2),
}
START = {
    "mu": 2.5,
    "log_tau": math.log(0.5),
    "mid": 3.0,
    "log_scale": math.log(2.0),
    "log_omega": math.log(0.3),
}
AUXILIARY = "log_size ~ t + I(t^2) + I(t^3) + (1 + t | tree)"


def design(n_trees: int = 40, n_times: int = 10) -> pd.DataFrame:
    """Trees measured at times 0, 1, ..., n_times - 1 (rows ordered by tree, then time)."""
    return pd.DataFrame(
        {
            "tree": np.repeat([f"T{i:03d}" for i in range(n_trees)], n_times),
            "t": np.tile(np.arange(n_times, dtype=float), n_trees),
        }
    )


def simulate(params: dict, data: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Log sizes at ``params`` (rows as in :func:`design`); every draw from ``rng``."""
    trees, codes = np.unique(data["tree"].to_numpy(), return_inverse=True)
    n_times = data.shape[0] // trees.size
    tau, omega, scale = (math.exp(params[k]) for k in ("log_tau", "log_omega", "log_scale"))
    a = params["mu"] + tau * rng.standard_normal(trees.size)
    shocks = rng.standard_normal((trees.size, n_times))
    eta = np.empty_like(shocks)
    eta[:, 0] = omega * shocks[:, 0]
    innovation = np.sqrt(1 - PHI**2) * omega
    for j in range(1, n_times):
        eta[:, j] = PHI * eta[:, j - 1] + innovation * shocks[:, j]
    t = data["t"].to_numpy()
    mean = a[codes] - np.log1p(np.exp(-(t - params["mid"]) / scale))
    return mean + eta.ravel()


def observed(seed: int, n_trees: int = 40) -> pd.DataFrame:
    """One observed data set at the true parameters."""
    d = design(n_trees)
    d["log_size"] = simulate(TRUTH, d, np.random.default_rng([20261201, seed]))
    return d
