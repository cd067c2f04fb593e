"""Posterior plots, the posterior report (rendered in a browser) and the command line."""

import json
import re
import subprocess
import sys
import warnings

import pytest

import multilevel
from tests.conftest import run_cli
from tests.test_report import check_in_browser

pytest.importorskip("matplotlib")
PRIORS = {"Intercept": "normal(0, 5)", "sd": "cauchy(0, 5)"}
FORMULA = "y | se(sigma) ~ 1 + (1 | school)"


@pytest.fixture(scope="module")
def post():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return multilevel.sample(
            FORMULA,
            multilevel.load_dataset("eight_schools"),
            priors=PRIORS,
            chains=2,
            draws=250,
            warmup=250,
            progress=False,
        )


def test_posterior_caterpillar_has_one_interval_per_school(post):
    fig = post.plot_caterpillar()
    ax = fig.axes[0]
    assert len(ax.get_yticklabels()) == 8
    assert len(ax.lines[0].get_xdata()) == 8  # the points; intervals are in the error-bar collection
    with pytest.raises(KeyError, match="no grouping factor"):
        post.plot_caterpillar("district")


def test_expectation_versus_mode_picture(post):
    fig = post.plot_point_estimates()
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == 2
    tau = panels[1]
    assert "mode outside interval" in tau.get_title()
    labels = [t.get_text() for t in tau.get_legend().get_texts()]
    assert [lab.split()[0] for lab in labels] == ["REML", "MAP", "mean", "median"]
    assert len(tau.lines) == 4


def test_trace_and_rank_plots_draw(post):
    fig = post.plot_trace()
    assert len(fig.axes) == 4  # (density, trace) for b and sd_school
    assert len(post.plot_rank().axes) >= 2


def test_posterior_report_renders(post, tmp_path):
    path = post.report(tmp_path / "schools.html")
    text = path.read_text()
    assert "<svg" in text and "Expectations and modes" in text and "Priors" in text
    assert "cauchy(0, 5) [truncated at 0]" in text
    assert len(re.findall(r'src="data:image/png;base64,', text)) == 3
    check_in_browser(path, tmp_path, 3)


run = run_cli


@pytest.fixture(scope="module")
def schools_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "schools.csv"
    multilevel.load_dataset("eight_schools").to_csv(path, index=False)
    return str(path)


SMALL = ["--chains", "2", "--draws", "200", "--warmup", "200"]


def test_sample_command_json(schools_csv):
    r = run(
        "sample",
        schools_csv,
        FORMULA,
        "--prior",
        "Intercept=normal(0, 5)",
        "--prior",
        "sd=cauchy(0, 5)",
        *SMALL,
        "--json",
        "--point-estimates",
    )
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["model"] == "bayes" and d["divergences"] == 0
    assert d["priors"]["sd_school__Intercept"]["prior"].startswith("cauchy(0, 5)")
    assert set(d["summary"]) == {"Intercept", "sd_school__Intercept"}
    assert d["point_estimates"]["sd_school__Intercept"]["REML"] == 0.0


def test_report_bayes_command(schools_csv, tmp_path):
    out = tmp_path / "b.html"
    r = run(
        "report",
        schools_csv,
        FORMULA,
        "--bayes",
        "--prior",
        "sd=cauchy(0, 5)",
        *SMALL,
        "--no-progress",
        "-o",
        str(out),
    )
    assert r.returncode == 0, r.stderr
    assert "Expectations and modes" in out.read_text()


def test_example_eight_schools():
    r = run("example", "eight_schools", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    pe = d["point_estimates"]["sd_school__Intercept"]
    assert pe["REML"] == 0.0 and 3.0 < pe["mean"] < 4.3 and "MAP outside interval" in pe["flag"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--prior", "sd cauchy"], "CLASS_OR_PARAMETER=DISTRIBUTION"),
        (["--prior", "tau=cauchy(0, 5)"], "no parameter or class 'tau'"),
        (["--prior", "sd=cauhy(0, 5)"], "did you mean 'cauchy'"),
        (["--chains", "0"], "chains must be a positive integer"),
    ],
)
def test_bad_sampling_input_is_one_line_and_exit_2(schools_csv, args, needle):
    r = run("sample", schools_csv, FORMULA, *args)
    assert r.returncode == 2
    assert needle in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_compiled_samplers_are_cached_on_disk(schools_csv, tmp_path):
    import os

    cache = tmp_path / "jax-cache"
    env = dict(os.environ, MULTILEVEL_JAX_CACHE=str(cache))
    cmd = [sys.executable, "-m", "multilevel.cli", "sample", schools_csv, FORMULA, *SMALL, "--no-progress"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert any(cache.iterdir())  # the sampling program was written to the cache
    off = dict(os.environ, MULTILEVEL_JAX_CACHE="0")
    cache2 = tmp_path / "unused"
    r = subprocess.run(cmd, capture_output=True, text=True, env={**off, "XDG_CACHE_HOME": str(cache2)})
    assert r.returncode == 0 and not (cache2 / "multilevel").exists()
