"""HTML reports: self-contained, and rendered by a real browser (headless Chromium)."""

import base64
import re
import shutil
import subprocess
import sys

import pytest

import multilevel

pytest.importorskip("matplotlib")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    path = tmp_path_factory.mktemp("report") / "sleep.html"
    m = multilevel.fit("Reaction ~ Days + (Days | Subject)", multilevel.load_dataset("sleepstudy"))
    return m.report(path)


def test_report_is_self_contained(report):
    text = report.read_text()
    assert "<svg" in text and "Variance components" in text and "Satterthwaite" in text
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == 3  # caterpillar, residuals, shrinkage
    for data in images:
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'src="http' not in text and "<link" not in text  # nothing fetched from outside


def test_glmm_report(tmp_path):
    m = multilevel.fit(
        "cbind(incidence, size - incidence) ~ period + (1 | herd)",
        multilevel.load_dataset("cbpp"),
        family="binomial",
    )
    text = m.report(tmp_path / "cbpp.html").read_text()
    assert "binomial" in text and text.count("data:image/png") == 1


def check_in_browser(report, tmp_path, n_images):
    """Render ``report`` in headless Chromium: every image loads, and the page is not blank."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it")
    probe = tmp_path / "probe.html"
    script = (
        "<script>window.addEventListener('load', () => { document.body.setAttribute('data-broken', "
        "[...document.images].filter(i => !i.complete || i.naturalWidth === 0).length); "
        "document.body.setAttribute('data-images', document.images.length); });</script>"
    )
    probe.write_text(report.read_text().replace("</body>", script + "</body>"))
    common = [CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run(
        [*common, "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    assert 'data-broken="0"' in dom and f'data-images="{n_images}"' in dom
    shot = tmp_path / "shot.png"
    subprocess.run(
        [*common, f"--screenshot={shot}", "--window-size=1200,1600", report.as_uri()],
        capture_output=True,
        timeout=120,
        check=True,
    )
    import matplotlib.image as mpimg

    pixels = mpimg.imread(shot)
    assert pixels.shape[0] > 100 and pixels.std() > 0.05  # not blank


def test_report_renders_in_a_browser(report, tmp_path):
    check_in_browser(report, tmp_path, 3)


def test_report_command_line(tmp_path):
    csv = tmp_path / "sleep.csv"
    multilevel.load_dataset("sleepstudy").to_csv(csv, index=False)
    out = tmp_path / "r.html"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "multilevel.cli",
            "report",
            str(csv),
            "Reaction ~ Days + (Days | Subject)",
            "-o",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert out.exists() and "<svg" in out.read_text()
    assert "replaced" not in r.stderr
    again = subprocess.run(r.args, capture_output=True, text=True)
    assert again.returncode == 0 and "existed and was replaced" in again.stderr


def test_reports_show_the_groups_without_the_normal_assumption(tmp_path):
    m = multilevel.fit("Reaction ~ Days + (1 | Subject)", multilevel.load_dataset("sleepstudy"))
    text = m.report(tmp_path / "r.html").read_text()
    assert 'alt="Group effects without the normal assumption (NPMLE)"' in text


def test_deconvolution_report(tmp_path):
    import numpy as np

    from multilevel.present.report import deconvolution_report

    rng = np.random.default_rng(0)
    y = np.where(rng.random(200) < 0.7, 0.0, 2.0) + rng.standard_normal(200)
    path = deconvolution_report(multilevel.deconvolve(y, 1.0), tmp_path / "d.html", y, 1.0)
    text = path.read_text()
    assert "NPMLE (Kiefer-Wolfowitz)" in text and text.count("data:image/png;base64") == 2
