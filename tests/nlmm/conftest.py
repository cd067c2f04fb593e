import json
from pathlib import Path

import pandas as pd
import pytest

DATA = Path(__file__).parent.parent / "data"


@pytest.fixture(scope="session")
def nlmm_refs() -> dict:
    return json.loads((DATA / "nlmm_references.json").read_text())


def load(name: str) -> pd.DataFrame:
    return pd.read_csv(DATA / f"{name}.csv")


@pytest.fixture(scope="session")
def orange() -> pd.DataFrame:
    return load("Orange")


@pytest.fixture(scope="session")
def theoph() -> pd.DataFrame:
    return load("Theoph")


@pytest.fixture(scope="session")
def orange_fit(orange):
    import multilevel

    return multilevel.nlfit(
        "circumference ~ SSlogis(age, Asym, xmid, scal)", orange, {"Asym": "1 + (1 | Tree)"}
    )


THEOPH_PARAMS = {"lKe": "1 + (1 | Subject)", "lKa": "1 + (1 | Subject)", "lCl": "1 + (1 | Subject)"}


@pytest.fixture(scope="session")
def theoph_fit(theoph):
    import multilevel

    return multilevel.nlfit("conc ~ SSfol(Dose, Time, lKe, lKa, lCl)", theoph, THEOPH_PARAMS)
