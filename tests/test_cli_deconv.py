"""``multilevel deconvolve`` from the shell: text, JSON, files, and errors in flags."""

import json

import numpy as np
import pandas as pd

from .conftest import run_cli


def _csv(tmp_path):
    rng = np.random.default_rng(0)
    theta = np.where(rng.random(300) < 0.7, 0.0, 2.0)
    path = tmp_path / "est.csv"
    pd.DataFrame({"est": theta + rng.standard_normal(300), "se": 1.0}).to_csv(path, index=False)
    return path


def test_deconvolve_text_json_and_files(tmp_path):
    path = _csv(tmp_path)
    r = run_cli("deconvolve", str(path), "--y", "est", "--se", "se", "--method", "gmodel")
    assert r.returncode == 0, r.stderr
    assert "g-model" in r.stdout and "log-likelihood" in r.stdout
    out, png = tmp_path / "post.csv", tmp_path / "prior.png"
    r = run_cli(
        "deconvolve", str(path), "--y", "est", "--se", "1", "--method", "gmodel", "--json",
        "--output", str(out), "--plot", str(png),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["converged"] and abs(sum(d["prior"]) - 1) < 1e-9
    assert "posterior_mean" in pd.read_csv(out).columns and png.stat().st_size > 0


def test_deconvolve_errors_name_the_flag(tmp_path):
    path = _csv(tmp_path)
    r = run_cli("deconvolve", str(path), "--y", "nope")
    assert r.returncode == 2 and "--y 'nope' is not a column" in r.stderr
    r = run_cli("deconvolve", str(path), "--y", "est", "--se", "sx")
    assert r.returncode == 2 and "--se 'sx' is neither a column" in r.stderr


def test_aov_command():
    from pathlib import Path

    npk = Path(__file__).parent / "data" / "aov" / "npk.csv"
    r = run_cli("aov", str(npk), "yield ~ N*P*K + Error(block)", "--factors", "block,N,P,K")
    assert r.returncode == 0, r.stderr
    assert "Error: block" in r.stdout and "Expected mean squares" in r.stdout
    r = run_cli("aov", str(npk), "yield ~ N*P*K + Error(block)")
    assert r.returncode == 2 and "add --factors block" in r.stderr
    r = run_cli("aov", str(npk), "yield ~ N + Error(block)", "--factors", "blok")
    assert r.returncode == 2 and "--factors: 'blok'" in r.stderr


def test_deconvolve_npmle_is_the_default(tmp_path):
    r = run_cli("deconvolve", str(_csv(tmp_path)), "--y", "est", "--se", "1", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["method"] == "npmle" and d["kkt_max"] < 1 + 1e-6
    html = tmp_path / "d.html"
    r = run_cli("deconvolve", str(_csv(tmp_path)), "--y", "est", "--se", "se", "--report", str(html))
    assert r.returncode == 0, r.stderr
    assert "data:image/png;base64" in html.read_text()
