"""Cluster randomized trials: ICC, design effects, power and sample size.

>>> from multilevel import crt
>>> crt.clusters_needed(crt.continuous(delta=0.3, sd=1.0, icc=0.05), cluster_size=20)
19
"""

from .analyze import CrtAnalysis, analyze
from .design import (
    Scenario,
    binary,
    cluster_size_needed,
    clusters_needed,
    continuous,
    design_effect,
    plot_power_grid,
    power,
    power_grid,
    rate,
)
from .icc import IccEstimate, icc
from .impute import PooledEffect, impute_and_analyze, rubin
from .simulate import SimulationResult, simulate_power, simulate_trial

__all__ = [
    "CrtAnalysis",
    "IccEstimate",
    "PooledEffect",
    "Scenario",
    "SimulationResult",
    "analyze",
    "binary",
    "cluster_size_needed",
    "clusters_needed",
    "continuous",
    "design_effect",
    "icc",
    "impute_and_analyze",
    "plot_power_grid",
    "power",
    "power_grid",
    "rate",
    "rubin",
    "simulate_power",
    "simulate_trial",
]
