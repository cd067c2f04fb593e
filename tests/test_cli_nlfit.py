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
