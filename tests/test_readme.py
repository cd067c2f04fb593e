"""The README's examples run as written, and the figures it quotes are what the code prints.

Its Python blocks run in order in one namespace (a reader's session), then its shell
blocks through the real entry point, in a scratch directory. A block preceded by
``<!-- readme: skip (why) -->`` is not an example that can run here (installing, a
synopsis, a skeleton); ``<!-- readme: slow (why) -->`` runs only with ``-m slow``.
"""

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"
BLOCK = re.compile(r"(?:<!-- readme: (\w+)[^>]*-->\s*\n)?```(\w+)\n(.*?)```", re.S)


def blocks(lang: str, slow: bool) -> list[str]:
    out = []
    for mark, block_lang, code in BLOCK.findall(README.read_text()):
        if block_lang == lang and mark != "skip" and (slow or mark != "slow"):
            out.append(code)
    return out


def run_examples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slow: bool) -> dict:
    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for i, code in enumerate(blocks("python", slow)):
            exec(compile(code, f"README python block {i}", "exec"), namespace)
    import matplotlib.pyplot as plt

    plt.close("all")
    src = str(Path(__file__).parent.parent / "src")
    env = {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for code in blocks("bash", slow):
        for line in code.splitlines():
            command = line.split("#")[0].strip()
            if not command:
                continue
            assert command.startswith("multilevel "), command
            r = subprocess.run(
                [sys.executable, "-m", "multilevel", *_split(command)[1:]],
                capture_output=True, text=True, env=env,
            )  # fmt: skip
            assert r.returncode == 0, (command, r.stderr)
    return namespace


def _split(command: str) -> list[str]:
    import shlex

    return shlex.split(command)


def test_readme_examples_run(tmp_path, monkeypatch):
    ns = run_examples(tmp_path, monkeypatch, slow=False)
    assert {"m", "g", "c", "res", "trial", "pilot", "newdata"} <= set(ns)
    assert ns["res"].primary.method == "gee" and (tmp_path / "trial.csv").exists()


def quoted(pattern: str) -> tuple[float, ...]:
    m = re.search(pattern, " ".join(README.read_text().split()))
    assert m, pattern
    return tuple(float(v) for v in m.groups())


def test_readme_figures_without_sampling():
    import multilevel
    from multilevel import crt

    s = crt.continuous(delta=0.3, sd=1.0, icc=0.05, cv=0.4)
    (deff,) = quoted(r"crt\.design_effect\(20, icc=0\.05, cv=0\.4\) # Eldridge: [^=]*= ([\d.]+)")
    assert round(crt.design_effect(20, icc=0.05, cv=0.4), 2) == deff
    (k,) = quoted(r"crt\.clusters_needed\(s, cluster_size=20\) # (\d+) per arm")
    assert crt.clusters_needed(s, cluster_size=20) == k
    d = multilevel.load_dataset("sleepstudy")
    m0 = multilevel.fit("Reaction ~ 1 + (Days | Subject)", d)
    m1 = multilevel.fit("Reaction ~ Days + (Days | Subject)", d)
    chisq, p = quoted(r"m2 6 1763\.9 1783\.1 -875\.97 1751\.9 ([\d.]+) 1 ([\d.e-]+) \*\*\*")
    row = multilevel.anova(m0, m1).table.iloc[1]
    assert round(float(row["Chisq"]), 3) == chisq and float(row["Pr(>Chisq)"]) == pytest.approx(p, rel=1e-3)
    lo, hi = quoted(r"sd_Days\|Subject ([\d.]+) ([\d.]+)")
    ci = m1.confint()
    assert ci.loc["sd_Days|Subject"].tolist() == pytest.approx([lo, hi], abs=1e-6)


@pytest.mark.slow
def test_readme_slow_examples_and_the_eight_schools_figures(tmp_path, monkeypatch):
    ns = run_examples(tmp_path, monkeypatch, slow=True)
    mean, lo, hi = quoted(
        r"its posterior mean is ([\d.]+) \(reference [\d.]+\) and its 95% interval \(([\d.]+), ([\d.]+)\)"
    )
    row = ns["post"].summary().loc["sd_school__Intercept"]
    assert round(float(row["mean"]), 2) == pytest.approx(mean, abs=0.011)
    assert round(float(row["q2.5"]), 2) == pytest.approx(lo, abs=0.011)
    assert round(float(row["q97.5"]), 2) == pytest.approx(hi, abs=0.011)
