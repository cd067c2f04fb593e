import json
import re
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def lme4_refs() -> dict:
    return json.loads((DATA / "lme4_fits.json").read_text())


def lme4_name(name: str) -> str:
    """Our coefficient / term name as lme4 prints it."""
    if name == "Intercept":
        return "(Intercept)"
    return re.sub(r"\[T\.([^\]]*)\]", r"\1", name)


def run_cli(*args, env=None):
    """The command line through its real entry point, in a fresh process."""
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "multilevel.cli", *args], capture_output=True, text=True, env=env
    )
