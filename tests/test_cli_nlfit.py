"""``multilevel nlfit`` from the shell: summary, profile intervals, JSON, errors in flags."""

import json
from pathlib import Path

from .conftest import run_cli

ORANGE = str(Path(__file__).parent / "data" / "Orange.csv")
FORMULA = "circumference ~ SSlogis(age, Asym, xmid, scal)"


def test_nlfit_summary_confint_and_json():
    r = run_cli("nlfit", ORANGE, FORMULA, "--param", "Asym=1 + (1 | Tree)", "--confint")
    assert r.returncode == 0, r.stderr
    assert "logLik" in r.stdout and "-131.6" in r.stdout and "Profile confidence intervals (95%)" in r.stdout
    r = run_cli(
        "nlfit", ORANGE, "circumference ~ Asym / (1 + exp((xmid - age) / scal))",
        "--param", "Asym=1 + (1 | Tree)", "--param", "xmid=1", "--param", "scal=1",
        "--start", "Asym=200", "--start", "xmid=700", "--start", "scal=350", "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["converged"] and abs(d["loglik"] + 131.5719) < 1e-3


def test_nlfit_errors_name_the_flags():
    r = run_cli("nlfit", ORANGE, FORMULA, "--param", "Asymp=1 + (1 | Tree)")
    assert r.returncode == 2 and "--param gives a formula for 'Asymp'" in r.stderr
    r = run_cli("nlfit", ORANGE, FORMULA, "--param", "Asym")
    assert r.returncode == 2 and "write it as NAME=FORMULA" in r.stderr
    r = run_cli("nlfit", ORANGE, FORMULA, "--param", "Asym=1 + (1 | Tree)", "--start", "Asym=big")
    assert r.returncode == 2 and "'big' is not a number" in r.stderr


def test_sample_takes_nonlinear_and_latent_models():
    r = run_cli(
        "sample", ORANGE, FORMULA, "--param", "Asym=1 + (1 | Tree)",
        "--prior", "b_Asym=normal(200, 50)", "--prior", "b_xmid=normal(700, 200)",
        "--prior", "b_scal=normal(350, 100)",
        "--chains", "1", "--draws", "100", "--warmup", "100", "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["model"] == "bayes-nonlinear" and "sd_Tree__Asym_Intercept" in d["summary"]
    r = run_cli("sample", ORANGE, FORMULA, "--param", "Asym=1 + (1 | Tree)", "--chains", "1")
    assert r.returncode == 2 and "--prior 'b_Asym=normal(0, 10)'" in r.stderr
    r = run_cli("sample", ORANGE, FORMULA, "--start", "Asym=200", "--chains", "1")
    assert r.returncode == 2 and "--start applies to nonlinear models" in r.stderr
    mi = str(Path(__file__).parent / "data" / "brms" / "mi_data.csv")
    r = run_cli(
        "sample", mi, "y ~ mi(x) + z + (1 | g)", "--mi", "x=~ z",
        "--chains", "1", "--draws", "100", "--warmup", "100", "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "x_z" in json.loads(r.stdout)["summary"]
