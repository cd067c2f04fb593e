"""The public entry points validate their arguments: nothing that does not apply is ignored."""

import subprocess
import sys

import pytest

import multilevel
from multilevel.control import FitControl, SampleControl
from multilevel.errors import ModelError
from tests.conftest import run_cli

SLEEP = "Reaction ~ Days + (Days | Subject)"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"


@pytest.fixture(scope="module")
def sleep():
    return multilevel.load_dataset("sleepstudy")


@pytest.fixture(scope="module")
def cbpp():
    return multilevel.load_dataset("cbpp")


@pytest.mark.parametrize("bad", ["yes", 1, "REML"])
def test_reml_must_be_a_bool(sleep, bad):
    with pytest.raises(ModelError, match="reml must be True or False"):
        multilevel.fit(SLEEP, sleep, reml=bad)


def test_glmm_refuses_reml_and_optimizer(cbpp):
    with pytest.raises(ModelError, match="reml applies to linear mixed models"):
        multilevel.fit(CBPP, cbpp, family="binomial", reml=False)
    model = multilevel.Model(CBPP, cbpp, family="binomial")
    with pytest.raises(ModelError, match="optimizer applies to linear mixed models"):
        model.fit(optimizer="lbfgsb")
    with pytest.raises(ModelError, match="optimizer applies"):
        model.fit(control=FitControl(optimizer="lbfgsb"))
    with pytest.raises(ModelError, match="nagq must be an integer"):
        model.fit(nagq=1.5)


def test_lmm_refuses_quadrature(sleep):
    with pytest.raises(ModelError, match="nagq=5 applies to generalized models"):
        multilevel.fit(SLEEP, sleep, nagq=5)
    assert multilevel.fit(SLEEP, sleep, nagq=1).converged  # the default, said out loud


def test_optimizer_and_control(sleep):
    with pytest.raises(ModelError, match="optimizer must be one of"):
        multilevel.fit(SLEEP, sleep, optimizer="newton")
    with pytest.raises(ModelError, match="contradicts"):
        multilevel.fit(SLEEP, sleep, optimizer="bobyqa", control=FitControl(optimizer="lbfgsb"))
    with pytest.raises(ModelError, match="FitControl"):
        multilevel.fit(SLEEP, sleep, control={"optimizer": "lbfgsb"})
    a = multilevel.fit(SLEEP, sleep, control=FitControl(optimizer="lbfgsb"))
    b = multilevel.fit(SLEEP, sleep)
    c = multilevel.fit(SLEEP, sleep, optimizer="bobyqa")
    assert a.optinfo.optimizer.startswith("scipy") and c.optinfo.optimizer.startswith("nlopt")
    assert b.optinfo.optimizer.startswith("BFGS")  # "auto": one grouping block
    assert a.reml_criterion == pytest.approx(b.reml_criterion, rel=1e-8)
    assert c.reml_criterion == pytest.approx(b.reml_criterion, rel=1e-10)


def test_start_is_checked(sleep):
    with pytest.raises(ModelError, match="start must have 3 values"):
        multilevel.fit(SLEEP, sleep, start=[1.0, 0.0])
    with pytest.raises(ModelError, match="start must be finite"):
        multilevel.fit(SLEEP, sleep, start=[1.0, float("nan"), 1.0])


def test_sample_settings_are_checked():
    d = multilevel.load_dataset("eight_schools")
    f = "y | se(sigma) ~ 1 + (1 | school)"
    with pytest.raises(ModelError, match="unknown sampler settings \\['chain'\\]"):
        multilevel.sample(f, d, chain=2)
    with pytest.raises(ModelError, match="not both"):
        multilevel.sample(f, d, control=SampleControl(chains=2), draws=10)
    for bad in ({"chains": 0}, {"warmup": -1}, {"draws": 2.5}, {"target_accept": 1.0}, {"progress": "no"}):
        with pytest.raises(ModelError):
            SampleControl(**bad)


run = run_cli


def test_cli_speaks_in_flags(tmp_path, cbpp, sleep):
    cb, sl = tmp_path / "cbpp.csv", tmp_path / "sleep.csv"
    cbpp.to_csv(cb, index=False)
    sleep.to_csv(sl, index=False)
    cases = [
        (("fit", str(cb), CBPP, "--family", "binomial", "--ml"), "--ml applies to linear mixed models"),
        (("fit", str(sl), SLEEP, "--nagq", "5"), "--nagq 5 applies to generalized models"),
        (("example", "cbpp", "--ml"), "--ml applies to linear mixed models"),
        (("sample", str(sl), SLEEP, "--chains", "0"), "--chains must be a positive integer"),
        (("sample", str(sl), SLEEP, "--target-accept", "2"), "--target-accept must be in"),
    ]
    for args, message in cases:
        r = run(*args)
        assert r.returncode == 2, r.stderr
        assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_warnings_point_at_the_callers_line(tmp_path):
    """A fit's warnings name the user's file and line, whichever entry point was used."""
    script = tmp_path / "user.py"
    script.write_text(
        "import warnings\n"
        "import numpy as np, pandas as pd, multilevel\n"
        "d = pd.DataFrame({'y': np.random.default_rng(1).normal(size=50), 'h': np.arange(50) % 3})\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    multilevel.fit('y ~ 1 + (1 | h)', d)\n"
        "    multilevel.Model('y ~ 1 + (1 | h)', d).fit()\n"
        "print([(x.filename, x.lineno) for x in w if x.category.__name__ == 'SingularFitWarning'])\n"
    )
    r = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str([(str(script), 6), (str(script), 7)])


def test_public_names_stay_functions():
    # importing the subpackages must not shadow the public functions of the same name
    import importlib
    import pkgutil
    import types

    for mod in pkgutil.iter_modules(multilevel.__path__):
        if mod.name not in ("cli", "__main__"):
            importlib.import_module(f"multilevel.{mod.name}")
    for name in multilevel.__all__:
        if name != "crt":
            assert not isinstance(getattr(multilevel, name), types.ModuleType), name
