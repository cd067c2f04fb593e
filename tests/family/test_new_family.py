"""Adding a family is one class and one registration line: a test-only family fits like the built-in."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import special

import multilevel
from multilevel.errors import DataError, FamilyError
from multilevel.family import Dispersion, Family, Gamma, get_family, register_family, unregister_family
from multilevel.linalg.ops import NUMPY, ArrayOps


class CountsForTest(Family):
    """Poisson counts written from the interface alone: what a new family's module holds.

    No ``kernel_code``, so PIRLS runs in NumPy, not in the compiled kernels the
    built-in Poisson uses: the two fits share nothing but the interface.
    """

    name = "counts_for_test"
    default_link = "log"
    links = ("log", "sqrt")
    canonical_link = "log"

    def variance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return mu

    def dvariance(self, mu: np.ndarray, disp: float) -> np.ndarray:
        return np.ones_like(mu)

    def logpdf(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float, ops: ArrayOps = NUMPY) -> Any:
        return w * (ops.special.xlogy(y, mu) - mu - ops.special.gammaln(y + 1))

    def unit_deviance(self, y: np.ndarray, mu: np.ndarray, w: np.ndarray, disp: float) -> np.ndarray:
        return 2 * w * (special.xlogy(y, y) - special.xlogy(y, mu) - (y - mu))

    def random(self, mu: np.ndarray, w: np.ndarray, disp: float, rng: np.random.Generator) -> np.ndarray:
        return rng.poisson(mu).astype(float)

    def check(self, y: np.ndarray, w: np.ndarray) -> None:
        if np.any(y < 0):
            raise DataError("counts_for_test needs non-negative counts")

    def mustart(self, y: np.ndarray, w: np.ndarray) -> np.ndarray:
        return y + 0.1

    def valid_mu(self, mu: np.ndarray) -> bool:
        return bool(np.all(mu > 0))


class PositiveForTest(Gamma):
    """The Gamma family under another name and without its kernel code (a family with a dispersion)."""

    name = "positive_for_test"
    kernel_code = None  # type: ignore[assignment]


@pytest.fixture
def registered():
    register_family(CountsForTest)
    register_family(PositiveForTest)
    yield
    unregister_family("counts_for_test")
    unregister_family("positive_for_test")


def _data(seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n, k = 400, 25
    g = rng.integers(0, k, n)
    x = rng.normal(size=n)
    eta = 0.5 + 0.4 * x + rng.normal(0, 0.6, k)[g]
    mu = np.exp(eta)
    return pd.DataFrame(
        {"g": g.astype(str), "x": x, "count": rng.poisson(mu), "pos": rng.gamma(3.0, mu / 3.0)}
    )


def _fit(formula: str, d: pd.DataFrame, family: str, **kw: Any) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return multilevel.fit(formula, d, family=family, **kw)


@pytest.mark.parametrize("nagq", [1, 7])
def test_a_registered_count_family_fits_as_the_built_in_poisson(registered, nagq):
    d = _data()
    new = _fit("count ~ x + (1 | g)", d, "counts_for_test", nagq=nagq)
    ref = _fit("count ~ x + (1 | g)", d, "poisson", nagq=nagq)
    assert new.family.name == "counts_for_test" and not new.problem.compiled
    assert new.loglik == pytest.approx(ref.loglik, abs=1e-7)
    np.testing.assert_allclose(new.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=1e-5)
    np.testing.assert_allclose(new.theta, ref.theta, rtol=1e-5)
    np.testing.assert_allclose(new.fixef_se.to_numpy(), ref.fixef_se.to_numpy(), rtol=1e-4)
    assert new.dispersion is None and new.sigma == 1.0
    assert "counts_for_test  ( log )" in new.summary()


def test_a_registered_family_with_a_dispersion_fits_as_the_built_in_gamma(registered):
    d = _data(12)
    new = _fit("pos ~ x + (1 | g)", d, "positive_for_test", link="log")
    ref = _fit("pos ~ x + (1 | g)", d, "Gamma", link="log")
    assert new.loglik == pytest.approx(ref.loglik, abs=1e-7)
    np.testing.assert_allclose(new.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=1e-5)
    assert new.dispersion == pytest.approx(ref.dispersion, rel=1e-5)
    assert new.sigma == pytest.approx(ref.sigma, rel=1e-5)  # sqrt(phi): a scale dispersion
    assert "positive_for_test dispersion parameter" in new.summary()
    # the declarations reach the graph and the sampler's structure without a name test
    model = multilevel.Model("pos ~ x + (1 | g)", d, family="positive_for_test", link="log")
    assert [n.label for n in model.graph().nodes if n.id == "sigma"] == ["φ"]
    from multilevel.bayes.program import Structure

    st = Structure.from_spec(model.spec, model.family)
    assert st.dispersion == "shape" and not st.marginal and st.disp_from(4.0) == 0.25


def test_a_registered_family_reaches_gee_and_its_errors(registered):
    d = _data()
    new = multilevel.gee("count ~ x", d, groups="g", family="counts_for_test")
    ref = multilevel.gee("count ~ x", d, groups="g", family="poisson")
    np.testing.assert_allclose(new.coef.to_numpy(), ref.coef.to_numpy(), rtol=1e-8)
    with pytest.raises(FamilyError, match="not available for the counts_for_test family"):
        get_family("counts_for_test", "identity")
    assert get_family("counts_for_test").dispersion is Dispersion.NONE


def test_after_unregistering_the_name_is_unknown():
    with pytest.raises(FamilyError, match="unknown family 'counts_for_test'"):
        _fit("count ~ x + (1 | g)", _data(), "counts_for_test")
