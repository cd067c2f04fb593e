"""The Dask path (cross-products per partition, summed on a cluster) gives the in-memory fit."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import multilevel
from multilevel.errors import FormulaError, MissingDataWarning, ModelError, RankDeficiencyWarning

dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")
pytest.importorskip("pyarrow")


def _same_fit(a, b, rtol=1e-10):
    crit = (lambda m: m.reml_criterion) if a.reml else (lambda m: m.deviance)
    assert crit(a) == pytest.approx(crit(b), rel=rtol)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-5, atol=1e-6)
    assert list(a.fixef.index) == list(b.fixef.index)
    np.testing.assert_allclose(a.fixef.to_numpy(), b.fixef.to_numpy(), rtol=1e-6, atol=1e-8)
    se_a, se_b = a.coef_table["Std. Error"].to_numpy(), b.coef_table["Std. Error"].to_numpy()
    np.testing.assert_allclose(se_a, se_b, rtol=1e-6)
    assert a.sigma == pytest.approx(b.sigma, rel=1e-6)
    assert a.nobs == b.nobs
    assert a.spec.n_missing == b.spec.n_missing


def test_sleepstudy_in_partitions(client):
    df = multilevel.load_dataset("sleepstudy")
    f = "Reaction ~ Days + (Days | Subject)"
    m = multilevel.fit(f, dd.from_pandas(df, npartitions=4))
    ref = multilevel.fit(f, df)
    _same_fit(m, ref)
    for g in ref.ranef:
        np.testing.assert_allclose(m.ranef[g].to_numpy(), ref.ranef[g].to_numpy(), rtol=1e-5, atol=1e-6)
    assert "Scaled residuals: not kept" in m.summary()
    with pytest.raises(ModelError, match="rows live on the cluster"):
        m.residuals  # noqa: B018


def test_crossed_penicillin_ml(client):
    df = multilevel.load_dataset("Penicillin")
    f = "diameter ~ 1 + (1 | plate) + (1 | sample)"
    _same_fit(
        multilevel.fit(f, dd.from_pandas(df, npartitions=3), reml=False), multilevel.fit(f, df, reml=False)
    )


def test_factors_interaction_grouping_and_strings(client):
    df = multilevel.load_dataset("cake")
    df = df.assign(recipe=df["recipe"].astype(str).astype(object))  # strings, not categories
    f = "angle ~ recipe + temp + (1 | recipe:replicate)"
    ddf = dd.from_pandas(df.sample(frac=1.0, random_state=1), npartitions=3)  # levels spread unevenly
    _same_fit(multilevel.fit(f, ddf), multilevel.fit(f, df))


def test_weights_offset_and_missing_values(client):
    rng = np.random.default_rng(3)
    df = multilevel.load_dataset("sleepstudy").copy()
    df["w"] = rng.uniform(0.5, 2.0, len(df))
    df["o"] = rng.normal(0, 5, len(df))
    df.loc[rng.choice(len(df), 7, replace=False), "Days"] = np.nan
    df.loc[rng.choice(len(df), 5, replace=False), "Reaction"] = np.nan
    f = "Reaction ~ Days + (1 | Subject)"
    with pytest.warns(MissingDataWarning) as got:
        m = multilevel.fit(f, dd.from_pandas(df, npartitions=3), weights="w", offset="o")
    with pytest.warns(MissingDataWarning) as want:
        ref = multilevel.fit(f, df, weights="w", offset="o")
    assert str(got[0].message) == str(want[0].message)
    assert m.spec.missing_by_column == ref.spec.missing_by_column
    _same_fit(m, ref)
    assert m.spec.n_missing > 0


def test_parquet_glob_and_rank_deficiency(client, tmp_path):
    df = multilevel.load_dataset("sleepstudy").copy()
    df["Subject"] = df["Subject"].astype(str)
    df["Days2"] = 2.0 * df["Days"]
    for i, start in enumerate(range(0, len(df), 60)):
        df.iloc[start : start + 60].to_parquet(tmp_path / f"part{i}.parquet")
    f = "Reaction ~ Days + Days2 + (1 | Subject)"
    with pytest.warns(RankDeficiencyWarning, match="Days2"):
        m = multilevel.fit(f, str(tmp_path / "*.parquet"))
    with pytest.warns(RankDeficiencyWarning):
        ref = multilevel.fit(f, df)
    assert m.spec.dropped_fixed == ref.spec.dropped_fixed == ("Days2",)
    _same_fit(m, ref)
    assert m.spec.data_name.endswith("*.parquet")


def test_progress_reports_rows_and_evaluations(client, capsys):
    df = multilevel.load_dataset("sleepstudy")
    multilevel.fit("Reaction ~ Days + (1 | Subject)", dd.from_pandas(df, npartitions=2), progress=True)
    err = capsys.readouterr().err
    assert "cross-products" in err and "180/180" in err
    assert "optimizing" in err and "criterion" in err


def test_what_the_partitioned_path_refuses(client):
    df = multilevel.load_dataset("sleepstudy")
    ddf = dd.from_pandas(df, npartitions=2)
    with pytest.raises(FormulaError, match="each partition would be transformed"):
        multilevel.fit("Reaction ~ scale(Days) + (1 | Subject)", ddf)
    with pytest.raises(ModelError, match="must be a column name"):
        multilevel.fit("Reaction ~ Days + (1 | Subject)", ddf, weights=np.ones(len(df)))
    with pytest.raises(multilevel.errors.DataError, match="Poisson"):  # checked on the workers
        multilevel.fit("Reaction ~ Days + (1 | Subject)", ddf, family="poisson")
    with pytest.raises(multilevel.errors.DataError, match="not found"):
        multilevel.fit("Reaction ~ Hours + (1 | Subject)", ddf)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        multilevel.fit("Reaction ~ Days + (1 | Subject)", ddf)  # a clean fit warns nothing


def test_in_memory_progress(capsys):
    multilevel.fit("Reaction ~ Days + (1 | Subject)", multilevel.load_dataset("sleepstudy"), progress=True)
    assert "optimizing" in capsys.readouterr().err


@pytest.mark.slow
def test_local_cluster_for_the_call():
    df = multilevel.load_dataset("sleepstudy")
    m = multilevel.fit("Reaction ~ Days + (1 | Subject)", dd.from_pandas(df, npartitions=2))
    assert m.reml_criterion == pytest.approx(
        multilevel.fit("Reaction ~ Days + (1 | Subject)", df).reml_criterion, rel=1e-10
    )


def test_likelihood_ratio_test_of_two_dask_fits(client):
    df = multilevel.load_dataset("sleepstudy")
    ddf = dd.from_pandas(df, npartitions=2)
    big, small = "Reaction ~ Days + (Days | Subject)", "Reaction ~ Days + (1 | Subject)"
    got = multilevel.anova(multilevel.fit(small, ddf), multilevel.fit(big, ddf))
    want = multilevel.anova(multilevel.fit(small, df), multilevel.fit(big, df))
    np.testing.assert_allclose(
        got.table["Chisq"].to_numpy(dtype=float)[1:], want.table["Chisq"].to_numpy(dtype=float)[1:], rtol=1e-6
    )
    with pytest.raises(ModelError, match="cannot be shown to fit the same rows"):
        multilevel.anova(multilevel.fit(small, df), multilevel.fit(big, ddf))


@pytest.mark.filterwarnings("ignore::multilevel.errors.SingularFitWarning")  # both fits: tau at 0
def test_known_standard_errors(client):
    df = multilevel.load_dataset("eight_schools")
    f = "y | se(sigma) ~ 1 + (1 | school)"
    _same_fit(multilevel.fit(f, dd.from_pandas(df, npartitions=2)), multilevel.fit(f, df), rtol=1e-9)


def test_no_parquet_files(tmp_path):
    with pytest.raises(multilevel.errors.DataError, match="no Parquet data found"):
        multilevel.fit("y ~ x + (1 | g)", str(tmp_path / "*.parquet"))


def test_command_line_partitioned_parquet(client, tmp_path, capsys):
    # through the real entry point, on the scheduler of the test's cluster
    from multilevel.cli import main

    df = multilevel.load_dataset("sleepstudy")
    for i in range(3):
        df.iloc[60 * i : 60 * (i + 1)].to_parquet(tmp_path / f"part{i}.parquet")
    glob = str(tmp_path / "*.parquet")
    f = "Reaction ~ Days + (Days | Subject)"
    argv = ["fit", glob, f, "--partitioned", "--scheduler", client.scheduler.address, "--json", "--progress"]
    assert main(argv) == 0
    out = capsys.readouterr()
    import json

    d = json.loads(out.out)
    assert d["reml_criterion"] == pytest.approx(multilevel.fit(f, df).reml_criterion, rel=1e-10)
    assert "evaluations" in out.err
    assert main(["fit", glob, f, "--partitioned", "--factors", "Days"]) != 0
    assert "--factors reads columns in this process" in capsys.readouterr().err
    assert main(["fit", str(tmp_path / "part0.parquet"), f, "--scheduler", "tcp://x:1"]) != 0
    assert "--scheduler applies with --partitioned" in capsys.readouterr().err


def test_categorical_levels_differing_by_partition(client):
    # a categorical with unknown categories whose partitions hold different levels
    df = multilevel.load_dataset("sleepstudy")
    df["f"] = np.where(df.index < 90, "a", "b")
    f = "Reaction ~ Days + f + (1 | Subject)"
    ref = multilevel.fit(f, df)
    d = dd.from_pandas(df, npartitions=3, sort=False)
    d = d.assign(f=d.f.astype("category"))
    for data in (d, d.assign(f=d.f.cat.as_known())):
        _same_fit(multilevel.fit(f, data), ref)


def _set_dense_sum_share(share):
    from multilevel.linalg import crossprod

    old, crossprod.DENSE_SUM_SHARE = crossprod.DENSE_SUM_SHARE, share
    return old


def test_three_crossed_factors_take_the_compiled_pass_and_dense_sums(client):
    """A design whose A1R is too large to keep dense per partition: the compiled pass of
    crossed scalar factors on the workers, each worker's partitions summed where they
    are (here dense from the first sum, as at 10^8 rows) and then across workers."""
    from multilevel.linalg import crossprod

    rng = np.random.default_rng(7)
    n, levels = 30_000, (2_000, 1_000, 30)
    assert crossprod.scalar_applies(list(levels), [1, 1, 1], 2)
    codes = [rng.integers(0, k, n) for k in levels]
    x = rng.normal(size=n)
    y = 1 + 0.5 * x + sum(rng.normal(0, s, k)[c] for s, k, c in zip((1.0, 0.5, 0.3), levels, codes))
    df = pd.DataFrame({"f1": codes[0], "f2": codes[1], "f3": codes[2], "x": x, "y": y + rng.normal(size=n)})
    f = "y ~ x + (1 | f1) + (1 | f2) + (1 | f3)"
    old = client.run(_set_dense_sum_share, 0.0)
    try:
        m = multilevel.fit(f, dd.from_pandas(df, npartitions=6))
    finally:
        client.run(_set_dense_sum_share, next(iter(old.values())))
    assert isinstance(m.objective.cp.A1R, np.ndarray)  # the sums were kept dense
    _same_fit(m, multilevel.fit(f, df))


def test_the_jax_backend_on_partitions(client):
    pytest.importorskip("jax")
    df = multilevel.load_dataset("sleepstudy")
    f = "Reaction ~ Days + (Days | Subject)"
    m = multilevel.fit(f, dd.from_pandas(df, npartitions=3), control=multilevel.FitControl(backend="jax"))
    assert "jax.grad" in m.optinfo.optimizer
    _same_fit(m, multilevel.fit(f, df), rtol=1e-8)
