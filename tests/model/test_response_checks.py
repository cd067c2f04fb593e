"""The family's response checks run where every entry point passes (the materializer):
``fit``, ``gee`` and ``sample`` refuse the same responses with the same message."""

import numpy as np
import pandas as pd
import pytest

import multilevel
from multilevel.errors import DataError, DataWarning, SeparationWarning

ENTRY = {
    "fit": lambda d, **kw: multilevel.fit("y ~ x + (1 | g)", d, **kw),
    "gee": lambda d, **kw: multilevel.gee("y ~ x", d, groups="g", **kw),
    # the model is built (and checked) before anything is compiled or sampled
    "sample": lambda d, **kw: multilevel.sample("y ~ x + (1 | g)", d, chains=1, draws=10, warmup=10, **kw),
}


@pytest.fixture(scope="module")
def frame():
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {"g": np.repeat(np.arange(10), 6), "x": rng.normal(size=60), "c": rng.poisson(3, 60).astype(float)}
    )


@pytest.mark.parametrize("entry", sorted(ENTRY))
@pytest.mark.parametrize(
    "family, response, match",
    [
        ("poisson", lambda d: d.c + 0.5, "Poisson response must be integer counts"),
        ("poisson", lambda d: d.c - 5, "Poisson response must be non-negative counts"),
        ("binomial", lambda d: np.arange(60) % 3, r"binomial response must be 0/1"),
        ("binomial", lambda d: (d.c + 1) / (d.c + 2), r"holds proportions .* no numbers of trials.*cbind\("),
    ],
)
def test_every_entry_point_refuses_the_same_responses(frame, entry, family, response, match):
    with pytest.raises(DataError, match=match):
        ENTRY[entry](frame.assign(y=response(frame)), family=family)


def test_proportions_with_trials_are_accepted_and_fractional_successes_warned(frame):
    d = frame.assign(n=frame.c + 2, y=(frame.c + 1) / (frame.c + 2))
    m = multilevel.fit("y ~ x + (1 | g)", d, family="binomial", weights="n")
    ref = multilevel.fit("cbind(c + 1, 1) ~ x + (1 | g)", d, family="binomial")
    assert m.loglik == pytest.approx(ref.loglik, abs=1e-7)
    with pytest.warns(DataWarning, match="non-integer numbers of successes"):
        multilevel.fit("y ~ x + (1 | g)", d.assign(n=1.5), family="binomial", weights="n")


def test_sample_warns_of_separation_as_fit_does(frame):
    d = frame.assign(y=(frame.x > 0).astype(float))
    with pytest.warns(SeparationWarning, match=r"separation: 60 fitted probabilities .* priors on b"):
        ENTRY["sample"](d, family="binomial", progress=False)
