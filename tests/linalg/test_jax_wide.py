"""The JAX backend of a fit (what ``device="gpu"`` runs), on the CPU: the wide crossed
design's tiled scatter and tiled Cholesky give the NumPy factor, and fits agree."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import multilevel
from multilevel import FitControl
from multilevel.errors import ModelError

jax = pytest.importorskip("jax")
from multilevel.linalg import jax_wide, numpy_backend, wide  # noqa: E402
from multilevel.linalg.jax_cholesky import tiled_cholesky  # noqa: E402

JAX = FitControl(backend="jax")
F = "y ~ 1 + x + (1 | user) + (1 | movie)"


def _ratings(users: int = 900, movies: int = 120, n: int = 9000, seed: int = 3) -> pd.DataFrame:
    """Heavy-tailed activity: most users rate a few movies, some rate most of them."""
    rng = np.random.default_rng(seed)
    u = np.r_[np.arange(users), rng.zipf(1.5, n - users) % users]
    mv = np.r_[rng.integers(0, movies, users), rng.zipf(1.3, n - users) % movies]
    mv[:movies] = np.arange(movies)
    y = 3 + rng.normal(0, 0.5, users)[u] + rng.normal(0, 0.8, movies)[mv] + rng.normal(0, 1, n)
    return pd.DataFrame({"y": y, "x": rng.normal(size=n), "user": u.astype(str), "movie": mv.astype(str)})


@pytest.fixture
def wide_small(monkeypatch):
    """A wide layout from 100 movies on; segments of 8 entries and batches of 3 tiles, so
    that long rows are cut, several sizes meet, and batches are padded."""
    monkeypatch.setattr(wide, "WIDE_MIN_REST", 100)
    monkeypatch.setattr(jax_wide, "SEGMENT", 8)
    monkeypatch.setattr(jax_wide, "BATCH_PAIRS", 3 * 64)
    return _ratings()


def test_the_jax_factor_of_a_wide_design_is_the_numpy_factor(wide_small):
    model = multilevel.Model(F, wide_small)
    assert isinstance(model.crossprods.ARR, wide.RestBorder)
    ref, obj = model.objective(True), model.objective(True, JAX)
    # rows longer than a segment: tiles that pair two different segments of one user
    assert any((np.asarray(g.a) != np.asarray(g.b)).any() for g in obj.system.groups)
    for theta in ([0.5, 0.8], [1.3, 0.2], [0.0, 0.6], [0.7, 0.0]):
        theta = np.array(theta)
        f, g = ref.factor(theta), obj.factor(theta)
        for name in ("logdet_z", "logdet_x", "r2"):
            assert getattr(g, name) == pytest.approx(getattr(f, name), rel=1e-11)
        assert obj(theta) == pytest.approx(ref(theta), rel=1e-12)
        np.testing.assert_allclose(np.tril(np.asarray(g.LS)), f.LS.dense(), rtol=1e-9, atol=1e-10)
        s, sj = ref.linalg("solve")(ref.system, f), obj.linalg("solve")(obj.system, g)
        np.testing.assert_allclose(np.asarray(sj.beta), s.beta, rtol=1e-9)
        for a, b in zip(sj.b, s.b):
            np.testing.assert_allclose(np.asarray(a), b, rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(
            np.asarray(obj.linalg("vcov_beta")(obj.system, g, 1.3)),
            numpy_backend.vcov_beta(ref.system, f, 1.3),
        )
        for a, b in zip(
            obj.linalg("conditional_variances")(obj.system, g, 0.9),
            numpy_backend.conditional_variances(ref.system, f, 0.9),
        ):
            np.testing.assert_allclose(np.asarray(a), b, rtol=1e-8)
    # not positive definite: the criterion is infinite, not an error
    assert obj(np.array([np.nan, 0.5])) == np.inf


def test_a_wide_fit_on_jax_is_the_numpy_fit(wide_small):
    ref = multilevel.fit(F, wide_small, reml=False)
    m = multilevel.fit(F, wide_small, reml=False, control=JAX)
    assert m.optinfo.optimizer == "nlopt LN_BOBYQA (JAX on CPU)" and m.optinfo.converged
    assert m.deviance == pytest.approx(ref.deviance, rel=1e-9)
    np.testing.assert_allclose(m.theta, ref.theta, rtol=1e-3)
    np.testing.assert_allclose(m.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=1e-5)
    np.testing.assert_allclose(m.fixef_se.to_numpy(), ref.fixef_se.to_numpy(), rtol=1e-4)
    np.testing.assert_allclose(m.ranef["movie"].to_numpy(), ref.ranef["movie"].to_numpy(), atol=1e-3)
    assert "JAX on CPU" in m.summary()
    with pytest.raises(ModelError, match="optimizer='bobyqa'"):
        multilevel.fit(F, wide_small, control=FitControl(backend="jax", optimizer="lbfgsb"))


def test_a_dense_fit_on_jax_uses_jax_grad():
    df = multilevel.load_dataset("sleepstudy")
    f = "Reaction ~ Days + (Days | Subject)"
    ref, m = multilevel.fit(f, df), multilevel.fit(f, df, control=JAX)
    assert m.optinfo.optimizer == "scipy L-BFGS-B (jax.grad, JAX on CPU)" and m.optinfo.converged
    assert m.reml_criterion == pytest.approx(ref.reml_criterion, rel=1e-9)
    np.testing.assert_allclose(m.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(m.theta, ref.theta, rtol=1e-4)


@pytest.mark.parametrize(("m", "tile"), [(700, 200), (513, 512), (300, 300), (257, 64)])
def test_the_tiled_cholesky_is_the_cholesky_factor(m, tile):
    rng = np.random.default_rng(m)
    A = rng.normal(size=(m, m + 3))
    A = A @ A.T
    G = A + np.triu(rng.normal(size=(m, m)), 1)  # the upper triangle is not read
    L = np.tril(np.asarray(tiled_cholesky(jax.numpy.asarray(G), tile)))
    np.testing.assert_allclose(L, np.linalg.cholesky(A), rtol=1e-10, atol=1e-10)
    bad = np.eye(m)
    bad[m - 1, m - 1] = -1.0  # the last tile is not positive definite
    assert np.isnan(np.asarray(tiled_cholesky(jax.numpy.asarray(bad), tile))[m - 1, m - 1])


def test_a_block_too_big_for_the_device_is_refused():
    class Device:
        platform, id = "gpu", 0

        def memory_stats(self):
            return {"bytes_limit": 2**30}

    jax_wide.check_room(10_000, Device())  # 0.75 GiB
    with pytest.raises(ModelError, match=r"XLA_PYTHON_CLIENT_MEM_FRACTION"):
        jax_wide.check_room(20_000, Device())


def test_device_and_backend_are_checked():
    for bad, needle in (
        ({"device": "tpu"}, "device must be one of"),
        ({"backend": "torch"}, "backend must be one of"),
        ({"device": "gpu", "backend": "numpy"}, "backend='numpy' runs on the CPU"),
    ):
        with pytest.raises(ModelError, match=needle):
            FitControl(**bad)
    assert FitControl(device="gpu").linalg_backend == "jax"
    assert FitControl().linalg_backend == "numpy"
    cbpp = multilevel.load_dataset("cbpp")
    with pytest.raises(ModelError, match="apply to linear mixed models"):
        multilevel.fit(
            "cbind(incidence, size - incidence) ~ period + (1 | herd)", cbpp, family="binomial", control=JAX
        )


def test_no_gpu_says_what_to_install():
    try:
        jax.devices("gpu")
        pytest.skip("this machine has a GPU")
    except RuntimeError:
        pass
    with pytest.raises(ModelError, match=r"multilevel\[gpu\]"):
        multilevel.fit(
            "Reaction ~ Days + (1 | Subject)",
            multilevel.load_dataset("sleepstudy"),
            control=FitControl(device="gpu"),
        )
