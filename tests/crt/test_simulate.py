"""Analytic power against simulated power (the library's own fitters), within Monte Carlo error."""

import pytest

from multilevel import crt

GRID = [
    # scenario, clusters per arm, cluster size, analysis
    (crt.continuous(0.4, 1.0, 0.05), 6, 20, "cluster_t"),
    (crt.continuous(0.4, 1.0, 0.05), 10, 20, "gee"),
    (crt.continuous(0.4, 1.0, 0.05, cv=0.6), 10, 20, "lmm"),
    (crt.binary(0.3, 0.15, 0.03), 6, 20, "gee"),
    (crt.binary(0.3, 0.15, 0.03), 10, 20, "cluster_t"),
    (crt.binary(0.3, 0.15, 0.03, cv=0.6), 10, 20, "gee"),
]


@pytest.mark.parametrize("scenario, k, m, method", GRID)
def test_analytic_power_matches_simulation(scenario, k, m, method):
    sim = crt.simulate_power(scenario, k, m, method=method, reps=400, seed=2, workers=2)
    assert sim.failures == 0
    assert abs(sim.rate - crt.power(scenario, k, m)) < 3 * sim.mc_se


def test_type_one_error_of_small_sample_analyses():
    s = crt.continuous(0.4, 1.0, 0.05)
    sim = crt.simulate_power(s, 5, 20, method="cluster_t", reps=600, null=True, seed=7, workers=2)
    assert abs(sim.rate - 0.05) < 3 * 0.0089


def test_simulated_trials_have_the_design():
    import numpy as np

    rng = np.random.default_rng(0)
    d = crt.simulate_trial(rng, crt.binary(0.3, 0.2, 0.05, cv=0.5), 4, 15)
    assert d.cluster.nunique() == 8 and set(d.arm.unique()) == {0.0, 1.0}
    assert set(np.unique(d.y)) <= {0.0, 1.0}
    r = crt.simulate_trial(rng, crt.rate(0.01, 0.005, 0.3), 3, 500.0)
    assert list(r.columns) == ["events", "exposure", "arm", "cluster"]
