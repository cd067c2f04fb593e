"""The fit path stays light: heavy libraries are imported only by what needs them.

``scipy.stats`` alone costs ~0.2 s to import (more than a small fit); Numba, JAX
and matplotlib serve other methods and the plots. Each check runs in a fresh
interpreter, since this test process has imported everything already.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[1] / "src")
HEAVY = ("scipy.stats", "numba", "jax", "matplotlib")

_FIT = """
import multilevel
d = multilevel.load_dataset("sleepstudy")
multilevel.fit("Reaction ~ Days + (Days | Subject)", d)
"""


def _loaded(code: str) -> list[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"},
    )
    return json.loads(out.stdout.splitlines()[-1])


@pytest.mark.parametrize("code", ["import multilevel", _FIT], ids=["import", "lmm-fit"])
def test_no_heavy_import(code: str) -> None:
    mods = _loaded(code)
    heavy = [m for m in mods if m.split(".")[0] in HEAVY or m.startswith("scipy.stats")]
    assert heavy == []
