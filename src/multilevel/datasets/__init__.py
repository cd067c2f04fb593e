"""Bundled example data sets, coded as R codes them (factors are categoricals).

The reference fits in the test-suite assume R's coding: integer-coded columns
such as ``period`` (cbpp) or ``service`` (InstEval) are factors. ``load_dataset``
applies the levels recorded in ``columns.json``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import pandas as pd

from ..errors import DataError

_FILES = {
    "sleepstudy": "sleepstudy.csv",
    "Dyestuff": "Dyestuff.csv",
    "Dyestuff2": "Dyestuff2.csv",
    "Penicillin": "Penicillin.csv",
    "Pastes": "Pastes.csv",
    "cbpp": "cbpp.csv",
    "grouseticks": "grouseticks.csv",
    "VerbAgg": "VerbAgg.csv.gz",
    "InstEval": "InstEval.csv.gz",
    "radon": "radon.csv",
    "eight_schools": "eight_schools.csv",
    "crt10": "crt10.csv",
    "ohio": "ohio.csv",
    "dietox": "dietox.csv",
    "respiratory": "respiratory.csv",
    "cake": "cake.csv",
}

# Grouping columns of data sets that columns.json does not describe.
_EXTRA_FACTORS = {"radon": ["county"], "eight_schools": ["school"]}


def list_datasets() -> list[str]:
    """Names accepted by :func:`load_dataset`."""
    return sorted(_FILES)


@lru_cache(maxsize=1)
def _columns() -> dict[str, list[dict]]:
    text = resources.files(__package__).joinpath("columns.json").read_text()
    return {k: v["columns"] for k, v in json.loads(text).items()}


def load_dataset(name: str) -> pd.DataFrame:
    """Load a bundled data set as a pandas DataFrame with R's factor coding.

    Examples
    --------
    >>> load_dataset("sleepstudy").shape
    (180, 3)
    """
    if name not in _FILES:
        # the command line's names are lower case: accept any case
        by_case = {k.lower(): k for k in _FILES}
        if not isinstance(name, str) or name.lower() not in by_case:
            raise DataError(f"unknown data set {name!r}; choose one of {', '.join(list_datasets())}")
        name = by_case[name.lower()]
    with resources.as_file(resources.files(__package__).joinpath(_FILES[name])) as path:
        df = pd.read_csv(path, keep_default_na=True)
    for col in _columns().get(name, []):
        if col["type"] in ("factor", "ordered") and col["name"] in df.columns:
            levels = col["levels"]
            values = df[col["name"]].astype("string").astype(object)
            df[col["name"]] = pd.Categorical(values, categories=levels, ordered=col["type"] == "ordered")
    for colname in _EXTRA_FACTORS.get(name, []):
        df[colname] = pd.Categorical(df[colname])
    out = df.copy()
    out.attrs["name"] = name  # shown as the fit summary's Data: line
    return out
