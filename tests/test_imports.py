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


_NLFIT = """
import pandas as pd
import multilevel
d = pd.read_csv({csv!r})
m = multilevel.nlfit("circumference ~ SSlogis(age, Asym, xmid, scal)", d, {{"Asym": "1 + (1 | Tree)"}})
m.summary()
"""


def test_a_gaussian_nonlinear_fit_loads_no_scipy() -> None:
    """The nonlinear Gaussian path (PNLS, the quasi-Newton search, the population
    least squares, the summary's z p-values) is NumPy only: its first call costs what
    R's nlme does, not SciPy's 0.2 s of imports."""
    csv = str(Path(__file__).resolve().parent / "data" / "Orange.csv")
    mods = _loaded(_NLFIT.format(csv=csv))
    assert [m for m in mods if m.split(".")[0] in ("scipy", *HEAVY)] == []
    assert "multilevel.api.core" not in mods  # the linear core's imports stay off this path


def test_every_lazy_public_name_is_the_function_not_a_module() -> None:
    """The api package resolves names on first use; a submodule named as a function it
    holds would shadow the function once imported."""
    import importlib
    import pkgutil

    import multilevel
    import multilevel.api as api

    for info in pkgutil.iter_modules(api.__path__):
        importlib.import_module(f"multilevel.api.{info.name}")
    for name in api.__all__:
        assert callable(getattr(api, name)) and not isinstance(getattr(api, name), type(api)), name
        if name in multilevel.__all__:
            assert getattr(multilevel, name) is getattr(api, name)


def test_the_exact_me_fit_loads_no_jax() -> None:
    """The me() likelihood and its gradient are NumPy: no tracing or compiling on the first fit."""
    csv = str(Path(__file__).resolve().parent / "data" / "brms" / "me_data.csv")
    fit = f"multilevel.fit('y ~ me(x, sdx) + (1 | g)', pd.read_csv({csv!r}))"
    code = f"import pandas as pd, multilevel\n{fit}"
    mods = _loaded(code)
    assert [m for m in mods if m.split(".")[0] in ("jax", "numba")] == []
