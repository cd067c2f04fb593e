"""The Dask path of GLMMs (rows kept on the workers, one pass per PIRLS step) gives the in-memory fit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import multilevel
from multilevel.errors import ModelError

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")
pytest.importorskip("pyarrow")


def _same_glmm(a, b, rtol=1e-6):
    assert a.loglik == pytest.approx(b.loglik, rel=rtol)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a.fixef.to_numpy(), b.fixef.to_numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(a.fixef_se.to_numpy(), b.fixef_se.to_numpy(), rtol=1e-3)
    assert a.nobs == b.nobs
    assert a.optinfo.converged and b.optinfo.converged
    assert a.deviance_residual_sum == pytest.approx(b.deviance_residual_sum, rel=1e-5)


def test_verbagg_crossed_binomial(client):
    df = multilevel.load_dataset("VerbAgg")
    f = "r2 ~ Anger + Gender + btype + situ + (1 | id) + (1 | item)"
    m = multilevel.fit(f, dd.from_pandas(df, npartitions=3), family="binomial")
    ref = multilevel.fit(f, df, family="binomial")
    _same_glmm(m, ref)
    for g in ref.ranef:
        np.testing.assert_allclose(m.ranef[g].to_numpy(), ref.ranef[g].to_numpy(), rtol=1e-3, atol=1e-4)
    assert "Scaled residuals: not kept" in m.summary()
    assert m.problem.rows.passes > 10
    with pytest.raises(ModelError, match="rows live on the cluster"):
        m.fitted  # noqa: B018
    with pytest.raises(ModelError, match="rows live on the cluster"):
        m.residuals  # noqa: B018


def test_cbind_response_and_quadrature(client):
    df = multilevel.load_dataset("cbpp")
    f = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    ddf = dd.from_pandas(df.sample(frac=1.0, random_state=2), npartitions=3)
    _same_glmm(
        multilevel.fit(f, ddf, family="binomial", nagq=7), multilevel.fit(f, df, family="binomial", nagq=7)
    )


def test_poisson_offset_missing_values_and_gamma(client):
    rng = np.random.default_rng(5)
    n, k = 600, 30
    g = rng.integers(0, k, n)
    x = rng.normal(size=n)
    t = rng.uniform(1, 3, n)
    y = rng.poisson(t * np.exp(0.3 + 0.5 * x + rng.normal(0, 0.5, k)[g]))
    import pandas as pd

    df = pd.DataFrame({"y": y, "x": x, "g": g.astype(str), "lt": np.log(t)})
    df.loc[rng.choice(n, 9, replace=False), "x"] = np.nan
    f = "y ~ x + offset(lt) + (1 | g)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = multilevel.fit(f, dd.from_pandas(df, npartitions=4), family="poisson")
        ref = multilevel.fit(f, df, family="poisson")
    _same_glmm(m, ref)
    assert m.spec.n_missing == ref.spec.n_missing == 9
    # a family with a dispersion, non-canonical link: the observed Laplace's Newton passes
    df["z"] = rng.gamma(2.0, np.exp(0.2 + 0.3 * np.nan_to_num(x) + rng.normal(0, 0.3, k)[g]) / 2.0)
    f2 = "z ~ x + (1 | g)"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m2 = multilevel.fit(f2, dd.from_pandas(df, npartitions=3), family="Gamma", link="log")
        ref2 = multilevel.fit(f2, df, family="Gamma", link="log")
    _same_glmm(m2, ref2)
    assert m2.dispersion == pytest.approx(ref2.dispersion, rel=1e-4)


def test_glmm_refusals(client):
    df = multilevel.load_dataset("cbpp")
    ddf = dd.from_pandas(df, npartitions=2)
    f = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    with pytest.raises(ModelError, match="reml applies to linear mixed models"):
        multilevel.fit(f, ddf, family="binomial", reml=True)
    with pytest.raises(ModelError, match="laplace='observed'"):
        multilevel.fit("size ~ period + (1 | herd)", ddf, family="Gamma", link="log", laplace="expected")
    with pytest.raises(ModelError, match="applies to generalized models"):
        multilevel.fit("size ~ period + (1 | herd)", ddf, nagq=3)


def test_command_line_partitioned_binomial(client, tmp_path, capsys):
    import json

    from multilevel.cli import main

    df = multilevel.load_dataset("cbpp")
    for i in range(2):
        df.iloc[28 * i : 28 * (i + 1)].to_parquet(tmp_path / f"part{i}.parquet")
    f = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    argv = ["fit", str(tmp_path / "*.parquet"), f, "--family", "binomial", "--partitioned"]
    assert main([*argv, "--scheduler", client.scheduler.address, "--json", "--progress"]) == 0
    out = capsys.readouterr()
    ref = multilevel.fit(f, df, family="binomial")
    assert json.loads(out.out)["loglik"] == pytest.approx(ref.loglik, rel=1e-6)
    assert "passes over the rows" in out.err


def test_constant_response_and_new_data(client):
    df = multilevel.load_dataset("cbpp")
    ddf = dd.from_pandas(df.assign(z=0), npartitions=2)
    with pytest.raises(multilevel.errors.DataError, match="constant"):
        multilevel.fit("z ~ period + (1 | herd)", ddf, family="poisson")
    f = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
    m = multilevel.fit(f, dd.from_pandas(df, npartitions=2), family="binomial")
    ref = multilevel.fit(f, df, family="binomial")
    np.testing.assert_allclose(m.predict(df.head(5)), ref.predict(df.head(5)), rtol=1e-4)
