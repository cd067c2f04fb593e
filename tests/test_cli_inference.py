"""``multilevel anova`` and ``multilevel fit --confint`` through the real entry point."""

import json

import pytest

from .test_cli import SLEEP, run

F0 = "Reaction ~ 1 + (Days | Subject)"
F1 = "Reaction ~ Days + (Days | Subject)"


def test_anova_text():
    r = run("anova", str(SLEEP), F0, F1)
    assert r.returncode == 0, r.stderr
    assert "m2    6 1763.9 1783.1 -875.97   1751.9 23.537  1  1.226e-06 ***" in r.stdout
    assert "refitted with ML" in r.stdout


def test_anova_json_no_refit_chibar():
    r = run(
        "anova",
        str(SLEEP),
        "Reaction ~ Days + (1 | Subject)",
        F1,
        "--no-refit",
        "--boundary",
        "chibar",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["criterion"] == "REML" and d["refitted"] == []
    assert d["tests"][1].startswith("chi-bar-square")
    assert d["models"][1]["Df"] == 2


def test_fit_with_profile_intervals_json():
    r = run("fit", str(SLEEP), F1, "--confint", "profile", "--json")
    assert r.returncode == 0, r.stderr
    ci = json.loads(r.stdout)["confint"]
    assert ci["method"] == "profile" and ci["level"] == 0.95
    assert ci["intervals"]["Days"]["lower"] == pytest.approx(7.35865326005, rel=1e-5)


@pytest.mark.parametrize(
    "args, needle",
    [
        (
            ("fit", str(SLEEP), F1, "--confint", "prof"),
            "--confint must be one of profile, wald, boot, got 'prof'; did you mean 'profile'?",
        ),
        (("fit", str(SLEEP), F1, "--confint", "wald", "--level", "95"), "--level must be between 0 and 1"),
        (("anova", str(SLEEP), F1), "two or more formulas"),
        (
            ("anova", str(SLEEP), "Reaction ~ Days + (1 | Subject)", "Reaction ~ 1 + (Days || Subject)"),
            "same number of parameters",
        ),
    ],
)
def test_errors_one_line_exit_2(args, needle):
    r = run(*args)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.splitlines() if "multilevel: error" in ln]
    assert len(lines) == 1 and needle in lines[0], r.stderr


def test_cli_bootstrap_intervals_and_pb_test():
    data = str(SLEEP)
    r = run(
        "fit", data, "Reaction ~ Days + (Days | Subject)", "--confint", "boot", "--nsim", "100", "--seed", "1"
    )
    assert r.returncode == 0, r.stderr
    assert "Parametric bootstrap (perc, 100 simulations)" in r.stdout
    r = run(
        "anova", data, "Reaction ~ 1 + (Days | Subject)", "Reaction ~ Days + (Days | Subject)",
        "--test", "PB", "--nsim", "50", "--seed", "1", "--json",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    pb = json.loads(r.stdout)["parametric_bootstrap"][1]
    assert pb["simulations"] == 50 and pb["p"] == pytest.approx(1 / 51)
    r = run("fit", data, "Reaction ~ Days + (Days | Subject)", "--confint", "boot", "--nsim", "0")
    assert r.returncode == 2 and "--nsim must be a positive number" in r.stderr
