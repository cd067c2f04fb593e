import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from multilevel.errors import FormulaError
from multilevel.formula import parse_formula


def terms(f):
    return [(t.expr, t.group) for t in parse_formula(f).random]


def test_correlated_slope():
    p = parse_formula("Reaction ~ Days + (Days | Subject)")
    assert p.response == "Reaction"
    assert p.fixed == "Days"
    assert terms("Reaction ~ Days + (Days | Subject)") == [("Days", "Subject")]


def test_no_intercept_and_uncorrelated():
    assert terms("y ~ (0 + x | g)") == [("0 + x", "g")]
    assert terms("y ~ x + (x || g)") == [("1", "g"), ("0 + x", "g")]
    assert terms("y ~ (0 + x + z || g)") == [("0 + x", "g"), ("0 + z", "g")]


def test_nested_expands_like_lme4():
    assert terms("y ~ 1 + (1 | batch/cask)") == [("1", "cask:batch"), ("1", "batch")]
    assert terms("y ~ (1 | a/b/c)") == [("1", "c:b:a"), ("1", "b:a"), ("1", "a")]


def test_interaction_and_crossed():
    p = parse_formula("y ~ x + (1 | a:b) + (1 | c)")
    assert [t.factors for t in p.random] == [("a", "b"), ("c",)]


def test_fixed_part_left_to_formulaic():
    p = parse_formula("log(y) ~ x * C(f) + scale(z) + (1 | g)")
    assert p.response == "log(y)"
    assert p.fixed == "x * C(f) + scale(z)"


def test_intercept_only_and_removed_intercept():
    assert parse_formula("y ~ (1 | g)").fixed == "1"
    assert parse_formula("y ~ 0 + x + (1 | g)").fixed == "0 + x"
    assert parse_formula("y ~ -1 + x + (1 | g)").fixed == "0 + x"


def test_offset_cbind_and_se():
    p = parse_formula("cbind(s, n - s) ~ period + offset(log(e)) + (1 | herd)")
    assert p.cbind == ("s", "n - s")
    assert p.response is None
    assert p.offsets == ("log(e)",)
    assert p.fixed == "period"
    q = parse_formula("y | se(sigma) ~ 1 + (1 | school)")
    assert (q.response, q.se) == ("y", "sigma")


@pytest.mark.parametrize(
    "formula, fragment",
    [
        ("y ~ x + (1 |)", "(1 |)"),
        ("y ~ x + ( | g)", "( | g)"),
        ("y ~ x + 1 | g", "1 | g"),
        ("y ~ x + (1 | g", "("),
        ("y ~ x + (1 | a + b)", "a + b"),
        ("y ~ x - (1 | g)", "(1 | g)"),
        ("y | weights(w) ~ x + (1 | g)", "weights(w)"),
    ],
)
def test_errors_point_at_the_offending_part(formula, fragment):
    with pytest.raises(FormulaError) as info:
        parse_formula(formula)
    err = info.value
    start, end = err.span
    assert formula[start:end] == fragment
    assert "^" in str(err)


def test_no_tilde():
    with pytest.raises(FormulaError, match="no '~'"):
        parse_formula("y x + (1 | g)")


# ---- property tests ----------------------------------------------------
names = st.from_regex(r"[a-z][a-z0-9_]{0,5}", fullmatch=True).filter(
    lambda s: s not in ("offset", "cbind", "se")
)


@st.composite
def formulas(draw):
    resp = draw(names)
    fixed = draw(st.lists(names, min_size=0, max_size=3, unique=True))
    bars = draw(
        st.lists(
            st.tuples(
                st.lists(names, min_size=0, max_size=2, unique=True),
                st.lists(names, min_size=1, max_size=3, unique=True),
                st.sampled_from(["|", "||"]),
                st.sampled_from(["/", ":"]),
                st.booleans(),
            ),
            min_size=1,
            max_size=3,
        )
    )
    parts = fixed[:] or ["1"]
    expected = []
    for slopes, groups, bar, joiner, intercept in bars:
        lhs = " + ".join((["1"] if intercept or not slopes else ["0"]) + slopes)
        parts.append(f"({lhs} {bar} {joiner.join(groups)})")
        expected.append((slopes, groups, bar, joiner, intercept))
    return f"{resp} ~ " + " + ".join(parts), resp, expected


@settings(max_examples=200, deadline=None)
@given(formulas())
def test_parser_roundtrip(case):
    formula, resp, expected = case
    p = parse_formula(formula)
    assert p.response == resp
    n_terms = 0
    for slopes, groups, bar, joiner, intercept in expected:
        per_bar = (len(slopes) + (1 if intercept or not slopes else 0)) if bar == "||" else 1
        if bar == "||" and not intercept and slopes:
            per_bar = len(slopes)
        n_groups = len(groups) if joiner == "/" else 1
        n_terms += per_bar * n_groups
    assert len(p.random) == n_terms
    for t in p.random:
        assert t.group
        assert formula[t.span[0] : t.span[1]].startswith("(")
        assert formula[t.span[0] : t.span[1]].endswith(")")


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="y~x+()|1g:/ ", min_size=1, max_size=30))
def test_parser_never_crashes(text):
    try:
        parse_formula(text)
    except FormulaError as err:
        if err.span is not None:
            assert 0 <= err.span[0] <= err.span[1] <= len(text)


def test_r_power_inside_I_is_a_power():
    # lme4 users write I(x^2); Python would read ^ as exclusive or: a different column, silently
    import multilevel

    d = multilevel.load_dataset("sleepstudy")
    a = multilevel.fit("Reaction ~ Days + I(Days^2) + (Days | Subject)", d)
    b = multilevel.fit("Reaction ~ Days + I(Days**2) + (Days | Subject)", d)
    assert a.reml_criterion == b.reml_criterion
