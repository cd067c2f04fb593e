"""The blocked Kenward-Roger algebra against pbkrtest's n x n formulas, and the error paths."""

import warnings

import numpy as np
import pandas as pd
import pytest

import multilevel
from multilevel.errors import ModelError, SingularFitWarning
from multilevel.lmm.kr_products import _Algebra, kr_products
from tests.lmm.kr_dense import dense_products


def _simulated(seed=1, n=240):
    """Crossed factors, a vector term in the dense rest and in the first block, prior weights."""
    rng = np.random.default_rng(seed)
    g1 = rng.integers(0, 30, n)
    g2 = rng.integers(0, 8, n)
    x = rng.normal(size=n)
    f = rng.choice(["a", "b", "c"], n)
    b1 = rng.normal(size=(30, 2)) * [1.0, 0.5]
    b2 = rng.normal(size=(8, 2)) * [0.8, 0.6]
    y = 1 + 0.5 * x + (f == "b") + b1[g1, 0] + b1[g1, 1] * x + b2[g2, 0] + b2[g2, 1] * x + rng.normal(size=n)
    return pd.DataFrame(
        {"y": y, "x": x, "f": f, "g1": g1.astype(str), "g2": g2.astype(str), "w": rng.uniform(0.5, 2, n)}
    )


MODELS = [
    ("Reaction ~ Days + (Days | Subject)", "sleepstudy", {}),
    ("diameter ~ 1 + (1 | plate) + (1 | sample)", "Penicillin", {}),
    ("strength ~ 1 + (1 | batch/cask)", "Pastes", {}),
    ("Weight ~ Time + Cu + (Time | Pig) + (1 | Litter)", "dietox", {}),
    ("y ~ x + f + (x | g1) + (x | g2)", "sim", {}),
    ("y ~ x + f + (1 | g1) + (x | g2)", "sim", {"weights": "w"}),
    ("y ~ x + f + (x || g1) + (1 | g2)", "sim", {"weights": "w"}),
    ("y | se(sigma) ~ 1 + (1 | school)", "eight_schools", {}),
]


def _fit(formula, data, **kw):
    df = _simulated() if data == "sim" else multilevel.load_dataset(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SingularFitWarning)
        return multilevel.fit(formula, df, **kw)


@pytest.mark.parametrize("formula, data, kw", MODELS)
def test_blocked_products_equal_dense(formula, data, kw):
    m = _fit(formula, data, **kw)
    P, Q, K = dense_products(m)
    kp = kr_products(m.objective, m.factor, m.sigma)
    for ours, dense in ((kp.P, P), (kp.Q, Q), (kp.K, K)):
        scale = np.max(np.abs(dense))
        np.testing.assert_allclose(ours, dense, rtol=0, atol=1e-9 * scale)


@pytest.mark.parametrize("formula, data, kw", MODELS[:5])
def test_woodbury_x_part_is_the_factors(formula, data, kw):
    """``X'Vt^{-1}X`` from the blocked parts equals ``R_X R_X'`` of the fitted factor."""
    m = _fit(formula, data, **kw)
    alg = _Algebra(m.objective, m.factor)
    mz, p = m.objective.layout.mz, m.objective.layout.p
    RX = np.tril(np.asarray(m.factor.LS)[mz : mz + p, mz : mz + p])  # dpotrf leaves the upper part
    np.testing.assert_allclose(alg.XX, RX @ RX.T, rtol=1e-10, atol=1e-10 * np.abs(alg.XX).max())


def test_adjusted_vcov_is_larger_and_reduces_to_phi_for_balanced_case():
    m = _fit("Weight ~ Time + Cu + (1 | Pig)", "dietox")
    V, VA = m.vcov.to_numpy(), m.vcov_kr.to_numpy()
    assert np.all(np.linalg.eigvalsh(VA - V) > -1e-12)
    assert list(m.vcov_kr.index) == list(m.spec.fixed_names)


# ---- failure paths ------------------------------------------------------------


def test_bad_ddf_name_suggests():
    m = _fit("Weight ~ Time + Cu + (1 | Pig)", "dietox")
    with pytest.raises(ModelError, match="did you mean 'kenward-roger'"):
        m.anova(ddf="kenward-rogers")
    with pytest.raises(ModelError, match="'satterthwaite' or 'kenward-roger'"):
        m.test([[0, 1, 0, 0]], ddf="wald")


def test_unknown_term_suggests_close_matches():
    m = _fit("Weight ~ Time + Cu + (1 | Pig)", "dietox")
    with pytest.raises(ModelError, match=r"'Tim' is not a fixed-effect term.*did you mean 'Time'"):
        m.test("Tim")
    with pytest.raises(ModelError, match=r"did you mean 'Cu\[T.Cu035\]'"):
        m.test({"Cu[T.Cu35]": 1.0})


def test_non_estimable_contrast_is_refused():
    d = multilevel.load_dataset("dietox").assign(Time2=lambda x: 2 * x.Time)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = multilevel.fit("Weight ~ Time + Time2 + Cu + (1 | Pig)", d)
    assert "Time2" in m.spec.dropped_fixed
    with pytest.raises(ModelError, match=r"not estimable.*Time2"):
        m.test({"Time2": 1.0})


def test_bad_shapes_and_values():
    m = _fit("Weight ~ Time + Cu + (1 | Pig)", "dietox")
    with pytest.raises(ModelError, match="one column per fixed effect"):
        m.test([1.0, 0.0])
    with pytest.raises(ModelError, match="missing or infinite"):
        m.test([[0, np.nan, 0, 0]])
    with pytest.raises(ModelError, match="type must be 1 or 3"):
        m.anova(type=2)
    assert np.isnan(m.test(np.zeros((0, 4))).F)
    with pytest.raises(ModelError, match="rhs must be one value or one per row"):
        m.test("Cu", rhs=[1.0, 2.0, 3.0])


def test_kenward_roger_needs_reml_but_krmodcomp_refits():
    d = multilevel.load_dataset("dietox")
    big = multilevel.fit("Weight ~ Time + Cu + (1 | Pig)", d, reml=False)
    small = multilevel.fit("Weight ~ Time + (1 | Pig)", d, reml=False)
    with pytest.raises(ModelError, match="REML"):
        big.anova(ddf="kenward-roger")
    reml = multilevel.fit("Weight ~ Time + Cu + (1 | Pig)", d)
    assert big.krmodcomp(small).den_df == pytest.approx(reml.krmodcomp(small).den_df, rel=1e-6)


def test_krmodcomp_refuses_non_nested_and_equal_models():
    d = multilevel.load_dataset("dietox")
    a = multilevel.fit("Weight ~ Time + Cu + (1 | Pig)", d)
    b = multilevel.fit("Weight ~ Time + Evit + (1 | Pig)", d)
    with pytest.raises(ModelError, match="not nested"):
        a.krmodcomp(b)
    with pytest.raises(ModelError, match="same fixed-effect column space"):
        a.krmodcomp(a)


def test_doctests_of_the_new_modules():
    import doctest

    from multilevel.glmm import after_fit as glmm_after_fit
    from multilevel.lmm import after_fit, ftest, kenward_roger, kr_products, satterthwaite
    from multilevel.model import emmeans, emmeans_contrast, hypotheses
    from multilevel.present import ftests

    mods = (
        after_fit,
        ftest,
        kenward_roger,
        kr_products,
        satterthwaite,
        hypotheses,
        emmeans,
        emmeans_contrast,
        glmm_after_fit,
        ftests,
    )
    for mod in mods:
        res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS)
        assert res.failed == 0, mod.__name__
        assert res.attempted > 0, mod.__name__
