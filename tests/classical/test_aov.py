"""aov with Error() strata against R's summary(aov) tables and the EMS moment estimates."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from multilevel.classical import aov, format_aov, parse_aov
from multilevel.errors import DataError, DataWarning, FormulaError

DATA = Path(__file__).resolve().parent.parent / "data" / "aov"
CASES = ["npk", "Pastes", "Dyestuff2"]
COLUMNS = {"Df": "Df", "SumSq": "Sum Sq", "MeanSq": "Mean Sq", "F": "F value", "p": "Pr(>F)"}


def _reference(name: str) -> tuple[dict, pd.DataFrame]:
    ref = json.loads((DATA / f"anova_{name}.json").read_text())
    df = pd.read_csv(DATA / ref["data_file"])
    for col, levels in ref["factors"].items():
        df[col] = pd.Categorical(df[col].astype(str), categories=levels)
    return ref, df


def _fit(name: str):
    ref, df = _reference(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        return ref, aov(ref["aov_formula"], df)


def _close(a: float, b: float, tol: float = 1e-8) -> bool:
    return abs(a - b) <= tol * max(1.0, abs(b))


@pytest.mark.parametrize("name", CASES)
def test_stratum_tables_equal_r(name):
    ref, r = _fit(name)
    assert list(r.strata) == [s["stratum"] for s in ref["strata"]]
    for s in ref["strata"]:
        table = r.strata[s["stratum"]]
        assert list(table.index) == [row["term"] for row in s["table"]]
        for row in s["table"]:
            for key, col in COLUMNS.items():
                got = float(table.loc[row["term"], col])
                if row[key] is None:
                    assert math.isnan(got)
                else:
                    assert _close(got, row[key]), (s["stratum"], row["term"], key, got, row[key])


@pytest.mark.parametrize("name", CASES)
def test_ems_coefficients_and_moment_estimates(name):
    ref, r = _fit(name)
    assert list(r.ems.index) == [row["stratum"] for row in ref["ems"]["rows"]]
    for row in ref["ems"]["rows"]:
        assert int(r.ems.loc[row["stratum"], "df"]) == row["df"]
        assert _close(r.ems.loc[row["stratum"], "MS"], row["MS"])
        for comp, c in row["coef"].items():
            assert _close(r.ems.loc[row["stratum"], comp], c)
    assert r.expressions() == ref["ems"]["expressions"]
    assert set(r.estimates) == set(ref["anova_estimates"])
    for comp, v in ref["anova_estimates"].items():
        assert _close(r.estimates[comp], v)
    assert list(r.negative) == ref["anova_negative"]
    assert r.balanced is ref["balanced"]


def test_negative_component_is_reported_negative_and_flagged():
    ref, df = _reference("Dyestuff2")
    with pytest.warns(DataWarning, match="negative"):
        r = aov(ref["aov_formula"], df)
    assert r.estimates["Batch"] == pytest.approx(-1.321912768, abs=1e-8)
    assert bool(r.components.loc["Batch", "negative"])
    assert not bool(r.components.loc["Residual", "negative"])
    assert math.isnan(r.components.loc["Batch", "lower"])  # no interval for a negative estimate
    assert "negative" in " ".join(r.notes)
    assert r.to_dict()["negative"] == ["Batch"]


def test_satterthwaite_intervals():
    _, r = _fit("npk")
    ms_b, ms_w = r.ems["MS"]
    df_b, df_w = r.ems["df"]
    # residual: exact chi-square interval on the within df
    res = r.components.loc["Residual"]
    assert res["df"] == pytest.approx(df_w)
    assert res["lower"] == pytest.approx(df_w * ms_w / stats.chi2.ppf(0.975, df_w), rel=1e-10)
    assert res["upper"] == pytest.approx(df_w * ms_w / stats.chi2.ppf(0.025, df_w), rel=1e-10)
    # block: (MS_b - MS_w) / 4 with Satterthwaite's df
    est = (ms_b - ms_w) / 4
    nu = est**2 / ((ms_b / 4) ** 2 / df_b + (ms_w / 4) ** 2 / df_w)
    blk = r.components.loc["block"]
    assert blk["df"] == pytest.approx(nu, rel=1e-10)
    assert blk["lower"] == pytest.approx(nu * est / stats.chi2.ppf(0.975, nu), rel=1e-10)
    assert blk["upper"] == pytest.approx(nu * est / stats.chi2.ppf(0.025, nu), rel=1e-10)


def test_printed_like_summary_aov():
    _, r = _fit("npk")
    text = str(r)
    assert text == format_aov(r)
    assert text.startswith("Error: block\n")
    assert "\n\nError: Within\n" in text
    assert "N:P:K      1" in text
    assert "E[MS_block] = 4 sigma2_block + 1 sigma2_Residual" in text
    d = r.to_dict()
    json.dumps(d)  # plain values only
    assert d["strata"]["block"][0]["term"] == "N:P:K"
    assert d["strata"]["block"][1]["F"] is None


def test_without_error_term_one_within_stratum_is_lm_anova():
    _, df = _reference("npk")
    r = aov("yield ~ block + N*P*K", df)
    assert list(r.strata) == ["Within"]
    t = r.strata["Within"]
    assert list(t.index) == ["block", "N", "P", "K", "N:P", "N:K", "P:K", "Residuals"]  # N:P:K aliased
    _, ref = _fit("npk")
    within = ref.strata["Within"]
    for term in ["N", "P", "K", "N:P", "N:K", "P:K", "Residuals"]:
        assert t.loc[term, "Sum Sq"] == pytest.approx(within.loc[term, "Sum Sq"], rel=1e-10)
    assert t.loc["block", "Sum Sq"] == pytest.approx(
        ref.strata["block"]["Sum Sq"].sum(), rel=1e-10
    )  # block SS = N:P:K + block residual
    assert not str(r).startswith("Error:")


def test_unbalanced_one_way_closed_form_and_warning():
    g = ["a"] * 2 + ["b"] * 3 + ["c"] * 5
    y = [1.0, 2.0, 4.0, 5.0, 4.5, 3.0, 3.5, 2.0, 2.5, 4.0]
    d = pd.DataFrame({"g": g, "y": y})
    with pytest.warns(DataWarning, match="not unique"):
        r = aov("y ~ 1 + Error(g)", d)
    assert r.balanced is False
    means = d.groupby("g")["y"].agg(["mean", "size"])
    ss_b = float((means["size"] * (means["mean"] - d["y"].mean()) ** 2).sum())
    ss_w = float(((d["y"] - d.groupby("g")["y"].transform("mean")) ** 2).sum())
    assert r.strata["g"].loc["Residuals", "Sum Sq"] == pytest.approx(ss_b, rel=1e-12)
    assert r.strata["Within"].loc["Residuals", "Sum Sq"] == pytest.approx(ss_w, rel=1e-12)
    n_i = means["size"].to_numpy()
    n0 = (n_i.sum() - (n_i**2).sum() / n_i.sum()) / (len(n_i) - 1)  # the classic n0
    assert r.ems.loc["g", "g"] == pytest.approx(n0, rel=1e-12)
    est = (ss_b / 2 - ss_w / 7) / n0
    assert r.estimates["g"] == pytest.approx(est, rel=1e-10)
    assert any("not unique" in n for n in r.notes)


def test_unknown_column_names_it():
    _, df = _reference("npk")
    with pytest.raises(DataError, match=r"'blok'.*did you mean 'block'"):
        aov("yield ~ N + Error(blok)", df)
    with pytest.raises(DataError, match="'NN'"):
        aov("yield ~ NN + Error(block)", df)


def test_error_with_numeric_column_says_make_it_categorical():
    _, df = _reference("npk")
    df["block"] = df["block"].astype(int)
    with pytest.raises(DataError, match=r"numeric.*astype\('category'\)"):
        aov("yield ~ N*P*K + Error(block)", df)


def test_empty_data():
    with pytest.raises(DataError, match="no rows"):
        aov("y ~ 1 + Error(g)", pd.DataFrame({"g": pd.Series([], dtype=object), "y": []}))


@pytest.mark.parametrize(
    "formula, match",
    [
        ("Error(block)", "response"),
        ("yield ~ N + Error(block) + Error(N)", "one Error"),
        ("yield ~ N + Error()", "empty"),
        ("yield ~ N + Error(log(block))", "expression"),
        ("yield ~ N + Error(block", "closing"),
    ],
)
def test_bad_formulas(formula, match):
    _, df = _reference("npk")
    with pytest.raises(FormulaError, match=match):
        aov(formula, df)


def test_parse_nested_and_crossed_strata():
    assert parse_aov("y ~ 1 + Error(a/b/c)").error_terms == (("a",), ("a", "b"), ("a", "b", "c"))
    spec = parse_aov("y ~ t * s + Error(subject/(t*s))")
    assert spec.treatment == "y ~ t * s"
    assert spec.error_terms == (("subject",), ("subject", "t"), ("subject", "s"), ("subject", "t", "s"))
    assert parse_aov("y ~ Error(g) + x").treatment == "y ~ x"
    assert parse_aov("y ~ x").error_terms == ()


def test_split_plot_treatments_land_in_their_strata():
    """Whole-plot factor A tested against the plot stratum, B and A:B within."""
    rng = np.random.default_rng(4)
    rows = [(blk, f"p{blk}{a}", a, b) for blk in range(4) for a in "xyz" for b in "uv"]
    d = pd.DataFrame(rows, columns=["blk", "plot", "A", "B"])
    d["blk"] = d["blk"].astype(str)
    d["y"] = rng.normal(size=len(d))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        r = aov("y ~ A*B + Error(blk/plot)", d)
    assert list(r.strata) == ["blk", "blk:plot", "Within"]
    assert list(r.strata["blk:plot"].index) == ["A", "Residuals"]
    assert int(r.strata["blk:plot"].loc["Residuals", "Df"]) == 6
    assert list(r.strata["Within"].index) == ["B", "A:B", "Residuals"]
    assert int(r.strata["Within"].loc["Residuals", "Df"]) == 9
    assert r.balanced


@st.composite
def _designs(draw):
    a = draw(st.integers(2, 5))
    b = draw(st.integers(1, 3))
    reps = draw(st.integers(2, 3))
    nested = draw(st.booleans()) and b > 1
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    rows = [(f"g{i}", f"s{j}", f"t{k % 2}") for i in range(a) for j in range(b) for k in range(reps)]
    d = pd.DataFrame(rows, columns=["g", "s", "t"])
    d["y"] = rng.normal(size=len(d)) * draw(st.sampled_from([1e-3, 1.0, 1e3])) + 10.0
    drop = draw(st.integers(0, 3))  # rows removed: unbalanced when > 0
    if drop:
        d = d.drop(index=rng.choice(len(d), size=drop, replace=False)).reset_index(drop=True)
    treatment = draw(st.sampled_from(["1", "t"]))
    # t alternates within cells: unequal replication of t with 3 rows a cell
    balanced = drop == 0 and (treatment == "1" or reps % 2 == 0)
    return d, f"y ~ {treatment} + Error({'g/s' if nested else 'g'})", balanced


def _equal_replication(d: pd.DataFrame, formula: str) -> bool:
    """Removing rows can leave a design balanced (e.g. one row from each cell)."""
    used = [c for c in ("g", "s", "t") if c in formula.split("~")[1]]
    groups = [["g"], *([["g", "s"]] if "s" in used else []), *[[c] for c in used], used]
    return all(d.groupby(c, observed=True).size().nunique() == 1 for c in groups)


@settings(max_examples=30, deadline=None)
@given(_designs())
def test_strata_sums_of_squares_add_up_and_components_finite(case):
    d, formula, balanced = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        r = aov(formula, d)
    total = float(((d["y"] - d["y"].mean()) ** 2).sum())
    ss = sum(float(t["Sum Sq"].sum()) for t in r.strata.values())
    assert ss == pytest.approx(total, rel=1e-9, abs=1e-12)
    assert sum(int(t["Df"].sum()) for t in r.strata.values()) == len(d) - 1
    assert r.balanced is (balanced or _equal_replication(d, formula))
    if not r.balanced or "t" in formula or len(r.ems) < len(r.components):
        return  # moment estimates need one equation per component (e.g. rows left in each cell)
    assert np.all(np.isfinite(r.components["estimate"].to_numpy(dtype=float)))
    # below ~0.06 Satterthwaite df the chi-square's upper 2.5% point falls under its mean
    pos = r.components[(r.components["estimate"] > 0) & (r.components["df"] >= 0.1)]
    assert np.all(pos["lower"] <= pos["estimate"]) and np.all(pos["estimate"] <= pos["upper"])
    assert np.all(r.components["reml"].dropna() >= 0)


@pytest.mark.parametrize("name", CASES)
def test_reml_beside_the_moment_estimates(name):
    ref, r = _fit(name)
    for comp, v in ref["reml_estimates"].items():
        assert r.components.loc[comp, "reml"] == pytest.approx(v, rel=1e-6, abs=1e-10), comp
    assert np.all(r.components["reml"] >= 0)
    assert r.to_dict()["reml_estimates"].keys() == ref["reml_estimates"].keys()


def test_dyestuff2_reml_is_zero_where_the_moment_estimate_is_negative():
    _, r = _fit("Dyestuff2")
    assert r.components.loc["Batch", "reml"] == 0.0
    assert r.components.loc["Residual", "reml"] == pytest.approx(13.8063096275862, rel=1e-10)


EXTRA = json.loads((DATA / "aov_extra.json").read_text())["cases"]  # made by aov_extra.R


@pytest.mark.parametrize("case", EXTRA, ids=[c["name"] for c in EXTRA])
def test_more_designs_equal_r(case):
    """Unbalanced, repeated-measures, crossed-strata, covariate and no-Error designs."""
    df = pd.DataFrame(case["data"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        r = aov(case["formula"], df)
    assert list(r.strata) == list(case["strata"])
    for name, ref in case["strata"].items():
        table = r.strata[name]
        assert list(table.index) == ref["term"], name
        for key, col in COLUMNS.items():
            for term, want in zip(ref["term"], ref[key], strict=True):
                got = float(table.loc[term, col])
                if want is None:
                    assert math.isnan(got)
                else:
                    assert _close(got, want), (name, term, key, got, want)
    assert r.balanced is (case["name"] in ("repeated", "no_error"))


@pytest.mark.parametrize("case", [c for c in EXTRA if "reml" in c], ids=lambda c: c["name"])
def test_reml_of_unbalanced_designs_equals_lme4(case):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DataWarning)
        r = aov(case["formula"], pd.DataFrame(case["data"]))
    for comp, v in case["reml"].items():
        assert r.components.loc[comp, "reml"] == pytest.approx(v, rel=1e-5, abs=1e-7), comp


def test_component_without_an_equation_is_nan_not_zero():
    case = next(c for c in EXTRA if c["name"] == "unbalanced_split")
    with pytest.warns(DataWarning, match="subj not determined"):
        r = aov(case["formula"], pd.DataFrame(case["data"]))
    assert "subj" not in r.ems.index  # all of its df went to treatments
    assert math.isnan(r.components.loc["subj", "estimate"])
    assert not bool(r.components.loc["subj", "negative"])
    assert r.components.loc["subj:t", "estimate"] == pytest.approx(
        (r.ems.loc["subj:t", "MS"] - r.ems.loc["Within", "MS"]) / r.ems.loc["subj:t", "subj:t"], rel=1e-12
    )


def test_unidentified_components_are_nan_in_both_columns():
    d = pd.DataFrame({"b": list("xxyyzz"), "t": list("pqpqpq"), "y": [5.0, 7, 6, 9, 4, 7]})
    with pytest.warns(DataWarning, match="not determined"):
        r = aov("y ~ 1 + Error(b:t)", d)  # one row per cell: b:t and the residual only as a sum
    assert list(r.strata) == ["b:t"]
    assert r.components[["estimate", "reml"]].isna().all().all()
    with pytest.warns(DataWarning, match="t not determined"):
        r = aov("y ~ t + Error(t)", d)  # the error term is a treatment
    assert math.isnan(r.components.loc["t", "reml"])
    assert r.components.loc["Residual", "reml"] == pytest.approx(r.components.loc["Residual", "estimate"])
    assert any("REML cannot tell t apart" in n for n in r.notes)


def test_missing_rows_dropped_with_a_warning():
    from multilevel.errors import MissingDataWarning

    d = pd.DataFrame({"b": list("xxyyzz"), "t": list("pqpqpq"), "y": [np.nan, 7, 6, 9, 4, 7]})
    with pytest.warns(MissingDataWarning, match="1 rows"):
        r = aov("y ~ t + Error(b)", d)
    assert r.n == 5
    with pytest.raises(DataError, match="numeric"):
        aov("y ~ t + Error(b)", d.assign(y=[True, False] * 3))


@pytest.mark.parametrize("name", CASES)
def test_tables_print_as_r_prints_them(name):
    """The stratum tables of str() equal R's printed summary(aov) (summary_text.R),
    trailing blanks aside."""
    _, r = _fit(name)
    want = (DATA / f"summary_{name}.txt").read_text(encoding="utf-8")
    want = want.replace("\u2018", "'").replace("\u2019", "'")
    want_lines = [line.rstrip() for line in want.strip().splitlines()]
    got = str(r).split("\n\nExpected mean squares:")[0]
    assert len(got.splitlines()) == len(want_lines)
    for ours, theirs in zip(got.splitlines(), want_lines):
        assert _same_printed(ours, theirs), (ours, theirs)


def _same_printed(ours: str, theirs: str) -> bool:
    """Equal lines, or lines whose numbers differ by one unit in the last printed digit
    where both columns line up: a value on a rounding tie (npk's N:K sum of squares is
    33.135 exactly) prints either way, by the last bit that BLAS leaves."""
    if ours == theirs:
        return True
    a, b = ours.split(), theirs.split()
    if len(a) != len(b) or len(ours) != len(theirs):
        return False
    for x, y in zip(a, b):
        if x == y:
            continue
        try:
            fx, fy = float(x), float(y)
        except ValueError:
            return False
        decimals = len(y.split(".")[1]) if "." in y else 0
        if len(x) != len(y) or abs(fx - fy) > 1.01 * 10.0**-decimals:
            return False
    return True


def test_transformed_response():
    d = pd.DataFrame({"b": list("xxyyzz"), "t": list("pqpqpq"), "y": [5.0, 7, 6, 9, 4, 7]})
    r = aov("np.log(y) ~ t + Error(b)", d)
    logs = np.log(d["y"])
    ss_t = 3 * float(((logs.groupby(d["t"]).mean() - logs.mean()) ** 2).sum())
    assert r.strata["Within"].loc["t", "Sum Sq"] == pytest.approx(ss_t, rel=1e-12)
    with pytest.raises(DataError, match="must be numeric"):
        aov("t ~ 1 + Error(b)", d)


def test_multilevel_aov_is_the_function_after_the_package_is_imported():
    import multilevel
    import multilevel.classical  # the package of the ANOVA code, imported by any aov() call

    d = multilevel.load_dataset("Pastes")
    r = multilevel.aov("strength ~ 1 + Error(batch/cask)", d)
    assert r.strata.keys() == aov("strength ~ 1 + Error(batch/cask)", d).strata.keys()
