"""What the refit benchmarks share: paths, formulas, the references, the simulated
many-response design, and small helpers."""

from __future__ import annotations

import inspect
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent


ROOT = HERE.parent


SRC = ROOT / "src"


DATASETS = SRC / "multilevel" / "datasets"


SLEEP_CSV = DATASETS / "sleepstudy.csv"


SLEEP = "Reaction ~ Days + (Days | Subject)"


CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


MANY = "y ~ x + (1 | g)"
SLEEP0 = "Reaction ~ 1 + (Days | Subject)"
LME4_REF = ROOT.parent / "shared" / "reference" / "lme4_inference.json"


OWN_REF = ROOT / "tests" / "data" / "refits_refs.json"


GLMM_PYTHON = Path("/tmp/benchenv/bin/python")


REF_NOTES = {
    "sleepstudy_boot": "../shared/reference, lme4 1.1-31's bootMer as it is",
    "sleepstudy_boot_fixed": "tests/data, bootMer with refit's REML patched",
    "cbpp_boot": "tests/data",
}


def many_responses(n_resp: int, seed: int = 14) -> tuple[pd.DataFrame, np.ndarray]:
    """The fit_many design (60 rows, 20 groups of 3, one normal covariate) and ``n_resp``
    responses ``1 + 0.5 x + b_g + e`` (b ~ N(0, 0.7^2), e ~ N(0, 1)), one per column.

    Group effects and residuals come from separate streams drawn response by response,
    so the first k responses are the same whatever ``n_resp`` is (quick and full runs,
    and the CSV that goes to R, share them)."""
    ss = np.random.SeedSequence(seed)
    s_x, s_b, s_e = (np.random.default_rng(s) for s in ss.spawn(3))
    g = np.repeat(np.arange(20), 3)
    x = s_x.standard_normal(60)
    b = 0.7 * s_b.standard_normal((n_resp, 20))
    e = s_e.standard_normal((n_resp, 60))
    y = 1.0 + 0.5 * x[None, :] + b[:, g] + e
    design = pd.DataFrame({"x": x, "g": pd.Categorical([f"g{i:02d}" for i in g])})
    return design, np.ascontiguousarray(y.T)


def response_names(n: int) -> list[str]:
    return [f"y{k:05d}" for k in range(1, n + 1)]


def load_refs() -> dict:
    refs: dict = {}
    for path in (LME4_REF, OWN_REF):
        if path.exists():
            refs.update(json.loads(path.read_text()))
        else:
            print(f"reference file missing: {path}", file=sys.stderr)
    return refs


def missing(what: str) -> str:
    msg = f"multilevel: {what} is not available in this checkout; its cells are skipped"
    print(msg, file=sys.stderr)
    return msg


def has_param(fn, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return True
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **k)
