"""The command line through its real entry point."""

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

SLEEP = Path(__file__).parent.parent / "src" / "multilevel" / "datasets" / "sleepstudy.csv"


run = run_cli


def test_fit_summary():
    r = run("fit", str(SLEEP), "Reaction ~ Days + (Days | Subject)")
    assert r.returncode == 0, r.stderr
    assert "REML criterion at convergence: 1743.6" in r.stdout
    assert "Satterthwaite" in r.stdout


def test_fit_json_ml():
    r = run("fit", str(SLEEP), "Reaction ~ Days + (Days | Subject)", "--ml", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["method"] == "ML"
    assert d["deviance"] == pytest.approx(1751.93934446, rel=1e-8)


def test_example():
    r = run("example", "sleepstudy", "--json")
    assert r.returncode == 0
    assert json.loads(r.stdout)["nobs"] == 180


def test_parquet(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    path = tmp_path / "s.parquet"
    pd.read_csv(SLEEP).to_parquet(path)
    r = run("fit", str(path), "Reaction ~ Days + (1 | Subject)", "--json")
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize(
    "args, needle",
    [
        (("fit", "/no/such/file.csv", "y ~ (1 | g)"), "does not exist"),
        (("fit", str(SLEEP), "Reaction ~ Days + (Days | Subject"), "unclosed"),
        (("fit", str(SLEEP), "Reaction ~ Dayz + (1 | Subject)"), "Dayz"),
        (("example", "nope"), "unknown example"),
    ],
)
def test_bad_input_one_line_exit_2(args, needle):
    r = run(*args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]
    assert "Traceback" not in r.stderr


def test_glmm_from_the_command_line(tmp_path):
    import multilevel

    path = tmp_path / "cbpp.csv"
    multilevel.load_dataset("cbpp").to_csv(path, index=False)
    r = run(
        "fit",
        str(path),
        "cbind(incidence, size - incidence) ~ C(period) + (1 | herd)",
        "--family",
        "binomial",
        "--nagq",
        "25",
        "--json",
    )
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["method"] == "AGQ(25)"
    assert d["loglik"] == pytest.approx(-91.98337, abs=1e-4)


def test_example_cbpp():
    r = run("example", "cbpp")
    assert r.returncode == 0, r.stderr
    assert "Laplace" in r.stdout and "herd" in r.stdout


def test_unknown_family_one_line():
    r = run("fit", str(SLEEP), "Reaction ~ Days + (1 | Subject)", "--family", "poison")
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and "unknown family" in r.stderr


def test_gee_subcommand(tmp_path):
    import multilevel

    path = tmp_path / "crt10.csv"
    multilevel.load_dataset("crt10").to_csv(path, index=False)
    r = run("gee", str(path), "y ~ arm + x", "--groups", "cluster", "--family", "binomial", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["se_method"] == "kc" and d["n_clusters"] == 10
    r = run("gee", str(path), "y ~ arm + x", "--groups", "clusterz", "--family", "binomial")
    assert r.returncode == 2 and "clusterz" in r.stderr and len(r.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("graphviz", ["as installed", "hidden"])
def test_graph_subcommand(tmp_path, graphviz):
    """The SVG is valid with Graphviz's ``dot`` (an XML prolog first) and without it
    (the built-in layout); ``.ci/run`` installs Graphviz, so both paths run there."""
    import os
    import xml.etree.ElementTree as ET

    import multilevel

    env = None
    if graphviz == "hidden":
        env = {k: v for k, v in os.environ.items() if k != "PATH"}
        env["PATH"] = str(tmp_path / "no-tools")
    path = tmp_path / "pastes.csv"
    multilevel.load_dataset("Pastes").to_csv(path, index=False)
    r = run("graph", str(path), "strength ~ 1 + (1 | batch/cask)", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("digraph model") and "cluster_batch" in r.stdout
    out = tmp_path / "g.svg"
    r = run("graph", str(path), "strength ~ 1 + (1 | batch/cask)", "-o", str(out), env=env)
    assert r.returncode == 0, r.stderr
    root = ET.fromstring(out.read_text())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = "".join(root.itertext())
    assert "batch" in texts and "cask" in texts


def test_fast_step_leaves_no_status_line():
    """The elapsed-time line appears only for steps over a second (and then ends with a
    newline); a quick fit writes nothing to stderr."""
    r = run("fit", str(SLEEP), "Reaction ~ Days + (Days | Subject)")
    assert r.returncode == 0 and r.stderr == ""


def test_no_status_line_off_a_terminal(monkeypatch):
    # the elapsed-time line is for a terminal: a pipe or a log gets none, however long the step
    import io
    import time

    from multilevel.cli import common

    monkeypatch.setattr(common, "DELAY", 0.01)
    err = io.StringIO()
    monkeypatch.setattr(common.sys, "stderr", err)
    with common._Elapsed("fitting"):
        time.sleep(0.1)
    assert err.getvalue() == ""


def test_version_bare_call_and_a_closed_pipe():
    import subprocess
    import sys

    r = run("--version")
    assert r.returncode == 0 and r.stdout.startswith("multilevel ")
    r = run()
    assert r.returncode == 2 and "deconvolve" in r.stdout and "usage:" in r.stdout
    # the reader closes the pipe early: no "Broken pipe" error
    p = subprocess.run(
        f"{sys.executable} -m multilevel.cli example sleepstudy | head -1",
        shell=True, capture_output=True, text=True,
    )  # fmt: skip
    assert "Broken pipe" not in p.stderr and p.stdout


def test_python_surface_names():
    import multilevel

    assert {"fit", "sample", "load_dataset", "bootstrap", "deconvolve"} <= set(dir(multilevel))
    assert multilevel.load_dataset("penicillin").shape == multilevel.load_dataset("Penicillin").shape


def test_factors_flag_declares_factor_columns(tmp_path):
    import multilevel

    csv = tmp_path / "cbpp.csv"
    d = multilevel.load_dataset("cbpp")
    d.assign(period=d["period"].astype(int)).to_csv(csv, index=False)
    formula = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    r = run("fit", str(csv), formula, "--family", "binomial", "--factors", "period,herd")
    assert r.returncode == 0, r.stderr
    assert "period[T.2]" in r.stdout
    r = run("fit", str(csv), formula, "--family", "binomial", "--factors", "peri0d")
    assert r.returncode == 2 and "--factors: 'peri0d' is not a column" in r.stderr


def test_status_line_on_a_terminal_ends_before_the_output(monkeypatch):
    """On a terminal (stdout and stderr the same screen) the elapsed-time line is closed
    with a newline before the summary is printed: never ``fitting: 00:00Generalized ...``."""
    import io
    import time

    from multilevel.cli import common

    class Screen(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Screen()
    monkeypatch.setattr(common, "DELAY", 0.01)
    monkeypatch.setattr(common.sys, "stderr", screen)
    monkeypatch.setattr(common.sys, "stdout", screen)

    class Slow:
        def summary(self) -> str:
            return "Generalized linear mixed model fit"

    def run_slow():
        time.sleep(0.3)
        return Slow()

    assert common._run_and_report(run_slow, as_json=False) == 0
    text = screen.getvalue()
    assert "fitting: 00:00" in text
    before, _, _ = text.partition("Generalized")
    assert before.endswith("\n")
    # the line is redrawn in place (carriage returns), not piled up line after line
    assert before.count("\n") == 1


def test_python_speak_becomes_the_commands_flags(tmp_path):
    """Library messages name Python arguments (``na_action='omit'``, ``groups=``,
    ``weights=``, ``family='binomial'``); the command line prints its own flags."""
    import multilevel

    sleep = multilevel.load_dataset("sleepstudy")
    sleep.loc[[1, 2], "Days"] = float("nan")
    sleep.to_csv(tmp_path / "sleep.csv", index=False)
    cbpp = multilevel.load_dataset("cbpp")
    cbpp.assign(prop=cbpp.incidence / cbpp["size"]).to_csv(tmp_path / "cbpp.csv", index=False)
    multilevel.load_dataset("crt10").to_csv(tmp_path / "crt.csv", index=False)
    s, c, t = str(tmp_path / "sleep.csv"), str(tmp_path / "cbpp.csv"), str(tmp_path / "crt.csv")
    cases = [
        (("fit", s, "Reaction ~ Days + (1 | Subject)", "--na-action", "raise"), "pass --na-action omit to"),
        (("gee", s, "Reaction ~ Days + (1 | Subject)", "--groups", "Subject"), "clusters with --groups"),
        (("fit", c, "prop ~ period + (1 | herd)", "--family", "binomial"), "the trials with --weights"),
        (("gee", c, "prop ~ period", "--groups", "herd", "--family", "binomial"), "with --weights"),
        (("fit", c, "cbind(incidence, size - incidence) ~ period + (1 | herd)"), "pass --family binomial"),
        (("fit", c, "prop ~ period + (1 | herd)", "--family=binomial", "--weights=n"), "used in --weights"),
        (
            ("crt", "analyze", t, "--outcome", "y", "--arm", "arm", "--cluster", "cluster", "--covariates=z"),
            "used in --covariates not found",
        ),
    ]
    models = ("Reaction ~ 1 + (1 | Subject)", "Reaction ~ Days + (1 | Subject)")
    cases.append((("anova", str(SLEEP), *models, "--no-refit"), "Use no --no-refit (the default)"))
    for args, needle in cases:
        r = run(*args)
        assert r.returncode == 2 and needle in r.stderr, (args, r.stderr)
        assert "=" not in r.stderr.split("(at")[0], r.stderr  # no Python keyword left
    r = run("fit", c, "prop ~ period + (1 | herd)", "--family", "binomial", "--weights", "size", "--factors",
            "period", "--json")  # fmt: skip
    assert r.returncode == 0, r.stderr
    ref = multilevel.fit("cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial")
    assert json.loads(r.stdout)["loglik"] == pytest.approx(ref.loglik, abs=1e-6)


def test_flags_stay_python_where_the_command_has_none():
    from multilevel.cli.common import FLAGS, in_cli_terms

    token = FLAGS.set({"na_action": "--na-action", "ml": "--ml"})
    try:
        assert in_cli_terms("pass na_action='omit' or new_levels='population'") == (
            "pass --na-action omit or new_levels='population'"
        )
        assert in_cli_terms("at={'Time': [4]} and na_action=") == "at={'Time': [4]} and --na-action"
        assert in_cli_terms("use refit=True") == "use refit=True"  # no --no-refit on this command
        assert in_cli_terms("refit with reml=True (or use ddf='satterthwaite')").startswith(
            "refit with REML (no --ml)"
        )
    finally:
        FLAGS.reset(token)


def test_crt_analyze_reports_dropped_rows_on_one_line(tmp_path):
    import multilevel

    d = multilevel.load_dataset("crt10")
    d.loc[[0, 40], "x"] = float("nan")
    d.to_csv(tmp_path / "crt.csv", index=False)
    trial = ("crt", "analyze", str(tmp_path / "crt.csv"), "--outcome", "y", "--arm", "arm")
    r = run(*trial, "--cluster", "cluster", "--covariates", "x")
    assert r.returncode == 0, r.stderr
    by_arm = d.loc[[0, 40], "arm"].value_counts()
    assert f"missing covariate (arm 0: {by_arm.get(0, 0)}, arm 1: {by_arm.get(1, 0)})" in r.stdout
    assert r.stderr.strip() == "warning: dropped 2 of 323 rows with missing values in columns x (2)"


def test_time_limit_and_quadrature_limits_speak_flags(capsys):
    from multilevel.cli import main

    data = Path(__file__).parent.parent / "src" / "multilevel" / "datasets"
    f = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    assert main(["fit", str(data / "cbpp.csv"), f, "--family", "binomial", "--nagq", "30"]) != 0
    assert "--nagq 30 is more quadrature nodes than the 25" in capsys.readouterr().err
    # two grouping factors: BOBYQA, which the time limit stops (one block is a bounded BFGS)
    pen = str(data / "Penicillin.csv")
    assert main(["fit", pen, "diameter ~ 1 + (1 | plate) + (1 | sample)", "--max-seconds", "0.0001"]) == 0
    err = capsys.readouterr().err
    assert "--max-seconds SECONDS" in err and "FitControl" not in err
