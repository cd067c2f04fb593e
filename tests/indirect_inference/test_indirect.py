"""Indirect inference: an exactly solvable case, a mixed model, and what it refuses."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import multilevel
from multilevel.errors import ModelError


def _normal(params, data, rng):
    return pd.DataFrame({"y": params["mu"] + params["sigma"] * rng.standard_normal(len(data))})


def _mean_sd(d):
    y = d["y"].to_numpy()
    return {"mean": y.mean(), "sd": y.std(ddof=1)}


@pytest.fixture(scope="module")
def normal_data():
    return pd.DataFrame({"y": np.random.default_rng(3).normal(2.0, 1.5, size=60)})


def test_location_scale_is_solved_exactly(normal_data):
    # y_s = mu + sigma z_s with the same z_s at every candidate: the mean over the
    # simulations of (mean, sd) is (mu + sigma a, sigma b), so the estimate is known
    S, seed = 8, 5

    def run():
        return multilevel.indirect(
            _normal,
            _mean_sd,
            normal_data,
            {"mu": 0.0, "sigma": 1.0},
            n_sim=S,
            seed=seed,
            n_omega=50,
            bounds={"sigma": (1e-6, None)},
        )

    r = run()
    z = [np.random.default_rng(np.random.SeedSequence([seed, s])).standard_normal(60) for s in range(S)]
    a = np.mean([v.mean() for v in z])
    b = np.mean([v.std(ddof=1) for v in z])
    y = normal_data["y"].to_numpy()
    sigma = y.std(ddof=1) / b
    assert r.converged
    assert r.estimate["sigma"] == pytest.approx(sigma, rel=1e-7)
    assert r.estimate["mu"] == pytest.approx(y.mean() - sigma * a, rel=1e-7)
    assert r.J_df == 0 and np.isnan(r.J_p)
    assert np.all(r.se > 0) and r.se["mu"] == pytest.approx(1.5 / np.sqrt(60) * np.sqrt(1 + 1 / S), rel=0.35)
    # reproducible: the same seed gives the same answer
    again = run()
    assert again.estimate.equals(r.estimate)


def test_overidentified_has_a_j_test(normal_data):
    def stats(d):
        y = d["y"].to_numpy()
        return pd.Series({"mean": y.mean(), "sd": y.std(ddof=1), "q75": np.quantile(y, 0.75)})

    r = multilevel.indirect(
        _normal,
        stats,
        normal_data,
        {"mu": 0.0, "sigma": 1.0},
        n_sim=10,
        n_omega=100,
        bounds={"sigma": (1e-6, None)},
    )
    assert r.converged and r.J_df == 1 and 0 <= r.J_p <= 1
    assert list(r.moments().index) == ["mean", "sd", "q75"]
    text = str(r)
    assert "J test" in text and "sigma" in text


def _groups():
    rng = np.random.default_rng(11)
    d = pd.DataFrame({"g": np.repeat([f"g{i}" for i in range(25)], 6), "x": rng.normal(size=150)})
    return d


def _ri(params, data, rng):
    codes = pd.factorize(data["g"])[0]
    u = params["sd_g"] * rng.standard_normal(codes.max() + 1)
    return (
        params["b0"]
        + params["b1"] * data["x"].to_numpy()
        + u[codes]
        + params["sigma"] * rng.standard_normal(len(data))
    )


def test_mixed_model_auxiliary_recovers_the_parameters():
    d = _groups()
    truth = {"b0": 1.0, "b1": -0.5, "sd_g": 0.8, "sigma": 0.6}
    d["y"] = _ri(truth, d, np.random.default_rng(2))
    start = {"b0": 0.0, "b1": 0.0, "sd_g": 0.5, "sigma": 1.0}
    bounds = {"sd_g": (0, None), "sigma": (1e-3, None)}
    r = multilevel.indirect(_ri, "y ~ x + (1 | g)", d, start, n_sim=10, n_omega=100, bounds=bounds)
    assert r.converged
    assert list(r.observed.index) == ["Intercept", "x", "sd_(Intercept)|g", "sigma"]
    z = (r.estimate - pd.Series(truth)) / r.se
    assert np.all(np.abs(z) < 4), z
    # the auxiliary as a fit gives the same answer
    fit = multilevel.fit("y ~ x + (1 | g)", d)
    r2 = multilevel.indirect(_ri, fit, d, start, n_sim=10, n_omega=100, bounds=bounds)
    assert np.allclose(r2.estimate, r.estimate, rtol=1e-8)


def test_what_it_refuses(normal_data):
    start = {"mu": 0.0, "sigma": 1.0}
    with pytest.raises(ModelError, match="at least as many statistics"):
        multilevel.indirect(_normal, lambda d: [d["y"].mean()], normal_data, start, n_omega=20)
    with pytest.raises(ModelError, match="do not move with parameter 'nu'"):
        multilevel.indirect(
            _normal,
            lambda d: {"mean": d["y"].mean(), "sd": d["y"].std(), "max": d["y"].max()},
            normal_data,
            {"mu": 0.0, "sigma": 1.0, "nu": 1.0},
            n_omega=20,
            bounds={"sigma": (1e-6, None)},
        )
    with pytest.raises(ModelError, match="bounds name 'tau'"):
        multilevel.indirect(_normal, _mean_sd, normal_data, start, bounds={"tau": (0, 1)})
    with pytest.raises(ModelError, match="outside its bounds"):
        multilevel.indirect(_normal, _mean_sd, normal_data, start, bounds={"sigma": (2, None)})
    with pytest.raises(ModelError, match="start must be a dict"):
        multilevel.indirect(_normal, _mean_sd, normal_data, [0.0, 1.0])
    with pytest.raises(ModelError, match="n_sim must be an integer"):
        multilevel.indirect(_normal, _mean_sd, normal_data, start, n_sim=0)
    with pytest.raises(ModelError, match="auxiliary must be a formula"):
        multilevel.indirect(_normal, 3, normal_data, start)
    d = _groups()
    d["y"] = _ri({"b0": 1.0, "b1": 0.0, "sd_g": 1.0, "sigma": 1.0}, d, np.random.default_rng(0))
    ri_start = {"b0": 0.0, "b1": 0.0, "sd_g": 0.5, "sigma": 1.0}
    with pytest.raises(ModelError, match="returned a data frame"):
        multilevel.indirect(lambda p, data, rng: data, "y ~ x + (1 | g)", d, ri_start, n_omega=20)
    with pytest.raises(ModelError, match="has 3 values"):
        multilevel.indirect(lambda p, data, rng: np.zeros(3), "y ~ x + (1 | g)", d, ri_start, n_omega=20)


def test_polish_lowers_a_criterion_inside_the_box():
    # the derivative-free fallback where Gauss-Newton's linear model fails (a kink)
    from multilevel.indirect_inference.estimate import Bounds, _polish

    def q(t):
        return float(abs(t[0] - 0.7) ** 0.5 + (t[1] - 2.0) ** 2)

    box = Bounds(np.array([0.0, -np.inf]), np.array([1.0, np.inf]))
    theta, value, ok = _polish(q, np.array([0.2, 0.0]), np.eye(2) * 4.0, box)
    assert ok and value < 0.05 and q(np.array([0.2, 0.0])) > 1
    assert 0.0 <= theta[0] <= 1.0


def test_collinear_statistics_count_once_in_the_j_test(normal_data):
    r = multilevel.indirect(
        _normal,
        lambda d: [d["y"].mean(), d["y"].mean(), d["y"].std()],
        normal_data,
        {"mu": 0.0, "sigma": 1.0},
        n_omega=40,
        bounds={"sigma": (1e-6, None)},
    )
    assert r.J_df == 0 and np.isnan(r.J_p)


def test_bad_inputs_name_the_problem(normal_data):
    start = {"mu": 0.0, "sigma": 1.0}
    with pytest.raises(ModelError, match="must be numbers or None"):
        multilevel.indirect(_normal, _mean_sd, normal_data, start, bounds={"sigma": ("a", 2)})
    with pytest.raises(ModelError, match="bounds must be a dict"):
        multilevel.indirect(_normal, _mean_sd, normal_data, start, bounds=[(0, 1)])
    with pytest.raises(ModelError, match="keys must be parameter names"):
        multilevel.indirect(_normal, _mean_sd, normal_data, {1: 0.0})
    with pytest.raises(ModelError, match="finite"):
        multilevel.indirect(_normal, _mean_sd, normal_data, {"mu": np.nan, "sigma": 1.0})
    with pytest.raises(ModelError, match="tol must be"):
        multilevel.indirect(_normal, _mean_sd, normal_data, start, tol=-1)
    with pytest.raises(ModelError, match="must return numbers"):
        multilevel.indirect(_normal, lambda d: "abc", normal_data, start)
    calls = []

    def changing(d):
        calls.append(1)
        return [d["y"].mean(), d["y"].std()] + ([] if len(calls) == 1 else [0.0])

    with pytest.raises(ModelError, match="same statistics every time"):
        multilevel.indirect(_normal, changing, normal_data, start, n_omega=20)


def test_binomial_counts_from_the_simulator_are_explained():
    cb = multilevel.load_dataset("cbpp")
    fit = multilevel.fit("cbind(incidence, size - incidence) ~ 1 + (1 | herd)", cb, family="binomial")
    codes, size = pd.factorize(cb["herd"])[0], cb["size"].to_numpy()

    def counts(p, d, rng):
        u = p["tau"] * rng.standard_normal(codes.max() + 1)
        return rng.binomial(size, 1 / (1 + np.exp(-(p["b0"] + u[codes]))))

    with pytest.raises(ModelError, match="proportions of the trials"):
        multilevel.indirect(counts, fit, cb, {"b0": -1.0, "tau": 0.5}, n_sim=2, n_omega=10)
