"""``multilevel emmeans`` and ``multilevel fit --anova`` through the real entry point."""

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

DATASETS = Path(__file__).parent.parent / "src" / "multilevel" / "datasets"


run = run_cli


def test_fit_with_anova_table():
    r = run("fit", str(DATASETS / "dietox.csv"), "Weight ~ Time + Cu + (1 | Pig)", "--anova", "kenward-roger")
    assert r.returncode == 0, r.stderr
    assert "Type III Analysis of Variance Table with Kenward-Roger's method" in r.stdout
    line = next(x for x in r.stdout.splitlines() if x.strip().startswith("Cu "))
    assert "69.001" in line and "1.0464" in line


def test_fit_anova_json_and_bad_ddf():
    r = run(
        "fit",
        str(DATASETS / "dietox.csv"),
        "Weight ~ Time + Cu + (1 | Pig)",
        "--anova",
        "satterthwaite",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    rows = {row["term"]: row for row in json.loads(r.stdout)["anova"]["rows"]}
    assert rows["Cu"]["NumDF"] == 2 and rows["Cu"]["DenDF"] == pytest.approx(69.008, rel=1e-4)
    bad = run(
        "fit", str(DATASETS / "dietox.csv"), "Weight ~ Time + Cu + (1 | Pig)", "--anova", "kenwardroger"
    )
    assert bad.returncode != 0 and "kenward-roger" in bad.stderr


def test_emmeans_json_with_contrasts():
    r = run(
        "emmeans",
        str(DATASETS / "cake.csv"),
        "angle ~ recipe * temperature + (1 | recipe:replicate)",
        "--specs",
        "recipe",
        "--contrast",
        "pairwise",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["method"] == "kenward-roger"
    first = out["emmeans"][0]
    assert first["recipe"] == "A" and first["emmean"] == pytest.approx(33.1222222, rel=1e-6)
    assert first["df"] == pytest.approx(42.0, rel=1e-6)
    assert [c["contrast"] for c in out["contrasts"]] == ["A - B", "A - C", "B - C"]
    assert out["adjust"] == "tukey"


def test_emmeans_glmm_text_by_and_at():
    r = run(
        "emmeans",
        str(DATASETS / "cbpp.csv"),
        "cbind(incidence, size - incidence) ~ C(period) + (1 | herd)",
        "--family",
        "binomial",
        "--specs",
        "period",
        "--type",
        "response",
    )
    assert r.returncode == 0, r.stderr
    assert "response" in r.stdout and "asymptotic" in r.stdout
    r = run(
        "emmeans",
        str(DATASETS / "dietox.csv"),
        "Weight ~ Time * Cu + (1 | Pig)",
        "--specs",
        "Cu",
        "--by",
        "Time",
        "--at",
        "Time=4,8",
        "--ddf",
        "satterthwaite",
    )
    assert r.returncode == 0, r.stderr
    assert "Time = 4:" in r.stdout and "Time = 8:" in r.stdout


def test_emmeans_errors():
    r = run("emmeans", str(DATASETS / "cake.csv"), "angle ~ recipe + (1 | replicate)", "--specs", "recipes")
    assert r.returncode != 0 and "did you mean 'recipe'" in r.stderr
    r = run(
        "emmeans",
        str(DATASETS / "cake.csv"),
        "angle ~ recipe + (1 | replicate)",
        "--specs",
        "recipe",
        "--at",
        "x",
    )
    assert r.returncode != 0 and "VARIABLE=VALUE" in r.stderr
