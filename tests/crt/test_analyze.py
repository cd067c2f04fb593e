"""crt.analyze and the crt subcommands."""

import json

import numpy as np
import pandas as pd
import pytest

import multilevel
from multilevel import crt
from multilevel.errors import DataError, MissingDataWarning
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def trial():
    d = multilevel.load_dataset("crt10")
    d.loc[[3, 50, 200], "y"] = np.nan
    return d


def test_binary_trial_uses_corrected_gee_and_reports_missing(trial):
    a = crt.analyze(trial, outcome="y", arm="arm", cluster="cluster", covariates=["x"], alternatives=["lmm"])
    assert a.outcome_type == "binary"
    assert a.primary.method == "gee" and "Kauermann-Carroll" in a.primary.correction
    assert a.primary.df == 10 - 3
    assert a.missing_by_arm == {
        "0": int(trial.loc[trial.arm == 0, "y"].isna().sum()),
        "1": int(trial.loc[trial.arm == 1, "y"].isna().sum()),
    }
    assert sum(a.missing_by_arm.values()) == 3
    assert "missing at random" in a.report()
    assert a.clusters_per_arm == {"0": 5, "1": 5}
    ref = multilevel.gee("y ~ arm + x", trial.dropna(), groups="cluster", family="binomial")
    assert a.primary.estimate == pytest.approx(ref.coef["arm"], rel=1e-8)
    json.dumps(a.to_dict())


def test_continuous_trial_uses_lmm_with_satterthwaite():
    rng = np.random.default_rng(0)
    K, m = 12, 15
    g = np.repeat(np.arange(K), m)
    arm = (np.arange(K) % 2)[g]
    y = 0.5 * arm + rng.normal(scale=0.4, size=K)[g] + rng.normal(size=g.size)
    import pandas as pd

    a = crt.analyze(pd.DataFrame({"y": y, "arm": arm, "c": g}), outcome="y", arm="arm", cluster="c")
    assert a.outcome_type == "continuous" and a.primary.method == "lmm"
    assert 5 < a.primary.df < 12


def test_bad_designs(trial):
    with pytest.raises(DataError, match="varies within clusters"):
        crt.analyze(trial.assign(arm=np.arange(len(trial)) % 2), outcome="y", arm="arm", cluster="cluster")
    with pytest.raises(DataError, match="exactly two"):
        crt.analyze(trial.assign(arm=trial.cluster % 3), outcome="y", arm="arm", cluster="cluster")


run = run_cli


def test_crt_power_cli():
    r = run(
        "crt",
        "power",
        "--outcome",
        "continuous",
        "--delta",
        "0.3",
        "--sd",
        "1",
        "--icc",
        "0.05",
        "--size",
        "20",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["clusters_per_arm"] == crt.clusters_needed(crt.continuous(0.3, 1, 0.05), 20)
    r = run(
        "crt",
        "power",
        "--outcome",
        "binary",
        "--p1",
        "0.3",
        "--p2",
        "0.2",
        "--icc",
        "0.02",
        "--clusters",
        "4",
    )
    assert r.returncode == 2 and "cannot reach power" in r.stderr
    # no effect size or ICC is assumed: the missing flags are named
    r = run("crt", "power", "--outcome", "binary", "--p1", "0.3", "--size", "20")
    assert r.returncode == 2 and "needs --p2, --icc (no default is assumed)" in r.stderr
    r = run("crt", "power", "--delta", "0.3", "--icc", "0.05", "--size", "20")
    assert r.returncode == 0 and "delta: 0.3" in r.stdout and "icc: 0.05" in r.stdout


def test_crt_analyze_cli(tmp_path):
    path = tmp_path / "t.csv"
    multilevel.load_dataset("crt10").to_csv(path, index=False)
    r = run("crt", "analyze", str(path), "--outcome", "y", "--arm", "arm", "--cluster", "cluster", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["effects"][0]["method"] == "gee"


def test_rows_dropped_for_a_missing_covariate_are_counted_by_arm():
    rng = np.random.default_rng(1)
    d = pd.DataFrame({"cluster": np.repeat(np.arange(12), 10), "arm": np.repeat(np.arange(12) % 2, 10)})
    d["x"] = rng.normal(size=120)
    d["y"] = 0.5 * d.arm + d.x + rng.normal(size=120)
    d.loc[[3, 17, 40, 61, 99], "x"] = np.nan  # arms 0, 1, 0, 0, 1
    d.loc[[5], "y"] = np.nan
    with pytest.warns(MissingDataWarning, match=r"dropped 6 of 120 rows .* y \(1\), x \(5\)"):
        a = crt.analyze(d, outcome="y", arm="arm", cluster="cluster", covariates=["x"])
    assert a.missing_covariates_by_arm == {"0": 3, "1": 2}
    assert a.missing_by_arm == {"0": 1, "1": 0}
    assert "missing covariate (arm 0: 3, arm 1: 2) were left out" in a.report()
    assert a.to_dict()["missing_covariates_by_arm"] == {"0": 3, "1": 2}
    ref = multilevel.fit("y ~ arm + x + (1 | cluster)", d.dropna())
    assert a.primary.estimate == pytest.approx(ref.fixef["arm"], rel=1e-6)


def test_an_infinite_outcome_is_refused_by_its_name():
    d = multilevel.load_dataset("crt10").astype({"y": float})
    d.loc[7, "y"] = np.inf
    with pytest.raises(DataError, match=r"outcome 'y' has 1 non-finite value .* in row 7"):
        crt.analyze(d, outcome="y", arm="arm", cluster="cluster")
