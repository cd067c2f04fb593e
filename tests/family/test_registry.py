"""The family and link registries: look-ups, errors, declarations, and no name tests outside family/."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import numpy as np
import pytest

import multilevel
from multilevel.errors import DataError, FamilyError, ModelError
from multilevel.family import (
    Dispersion,
    Family,
    Poisson,
    family_names,
    get_family,
    get_link,
    link_names,
    register_family,
    unregister_family,
)

SRC = Path(multilevel.__file__).parent


# ---- no family names tested outside family/ ------------------------------


def _strings(node: ast.AST) -> list[str]:
    """The string constants of a constant or of a tuple / list / set of them."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value]
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return [s for e in node.elts for s in _strings(e)]
    return []


def name_tests(source: str, names: set[str]) -> list[tuple[int, str]]:
    """(line, name) of every comparison with, ``match`` case on, or dict key equal to a family name."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare):
            for operand in (node.left, *node.comparators):
                found += [(node.lineno, s) for s in _strings(operand) if s in names]
        elif isinstance(node, ast.MatchValue):
            found += [(node.lineno, s) for s in _strings(node.value) if s in names]
        elif isinstance(node, ast.Dict):
            found += [(node.lineno, s) for k in node.keys if k is not None for s in _strings(k) if s in names]
    return found


def test_the_scan_finds_name_tests():
    names = {"gaussian", "Gamma"}
    code = (
        "a = fam.name == 'gaussian'\n"
        "b = spec.family in ('x', 'Gamma')\n"
        "c = {'Gamma': 3}\n"
        "match f:\n    case 'gaussian':\n        pass\n"
        "d = fit(family='Gamma')\n"  # choosing a family is not testing one
    )
    assert name_tests(code, names) == [(1, "gaussian"), (2, "Gamma"), (3, "Gamma"), (5, "gaussian")]


def test_no_family_name_tests_outside_family_package():
    # the registered names, not the aliases: "gamma" is also a prior distribution's name
    names = set(family_names())
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if "family" in path.relative_to(SRC).parts[:1]:
            continue
        for line, name in name_tests(path.read_text(), names):
            offenders.append(f"{path.relative_to(SRC)}:{line}: {name!r}")
    assert not offenders, "ask the family object instead of testing its name:\n" + "\n".join(offenders)


# ---- look-ups and errors ----------------------------------------------------


def test_names_and_aliases():
    assert family_names() == (
        "gaussian",
        "binomial",
        "poisson",
        "Gamma",
        "inverse_gaussian",
        "negative_binomial",
    )
    assert get_family("gamma").name == "Gamma"
    assert get_family("negbin", "sqrt").link.name == "sqrt"
    assert get_family("inverse.gaussian").link.name == "1/mu^2"
    fam = get_family("poisson")
    assert get_family(fam) is fam and get_family(fam, "identity").link.name == "identity"
    assert set(link_names()) >= {"identity", "log", "logit", "probit", "cloglog", "sqrt", "inverse", "1/mu^2"}


def test_unknown_names_raise_one_class_with_the_choices_and_a_suggestion():
    with pytest.raises(
        FamilyError, match=r"unknown family 'poison'; choose one of gaussian, binomial.*'poisson'\?"
    ):
        get_family("poison")
    with pytest.raises(FamilyError, match=r"unknown family 'Gama'.*did you mean 'Gamma'\?"):
        get_family("Gama")  # the suggestion names the family, not its lower-case alias
    with pytest.raises(
        FamilyError, match=r"unknown link 'prbit'; choose one of identity.*did you mean 'probit'\?"
    ):
        get_link("prbit")
    with pytest.raises(FamilyError, match=r"unknown link 'idenity' for the Gamma family.*'identity'\?"):
        get_family("Gamma", "idenity")
    with pytest.raises(
        FamilyError, match="link 'logit' is not available for the poisson family; choose one of log"
    ):
        get_family("poisson", "logit")
    with pytest.raises(FamilyError, match="family= takes a name or a Family"):
        get_family(3)
    # a ModelError (and so a ValueError), never a DataError: the data are not at fault
    assert issubclass(FamilyError, ModelError) and issubclass(FamilyError, ValueError)
    assert not issubclass(FamilyError, DataError)


def test_the_same_errors_reach_the_public_functions():
    d = multilevel.load_dataset("sleepstudy")
    with pytest.raises(FamilyError, match="did you mean 'gaussian'"):
        multilevel.fit("Reaction ~ Days + (1 | Subject)", d, family="gausian")
    with pytest.raises(FamilyError, match="not available for the gaussian family"):
        multilevel.fit("Reaction ~ Days + (1 | Subject)", d, link="logit")
    with pytest.raises(FamilyError, match="unknown family"):
        multilevel.gee("Reaction ~ Days", d, groups="Subject", family="binomal")


# ---- declarations -----------------------------------------------------------


@pytest.mark.parametrize("name", family_names())
def test_declarations_agree(name):
    fam = get_family(name)
    cls = type(fam)
    assert cls.default_link in cls.links
    assert cls.canonical_link is None or cls.canonical_link in cls.links
    assert set(cls.log_concave_links) <= set(cls.links)
    assert cls.linear_link is None or cls.linear_link in cls.links
    assert fam.has_dispersion == (fam.sampler_dispersion is not None) == bool(fam.dispersion_label)
    assert fam.has_dispersion == bool(fam.dispersion_symbol)
    if fam.has_dispersion:  # the sampler's transform and its inverse
        for disp in (0.3, 1.0, 4.5):
            assert fam.dispersion_from_sampled(fam.sampled_from_dispersion(disp)) == pytest.approx(
                disp, rel=1e-14
            )
    expected_sd = math.sqrt(2.25) if fam.dispersion is Dispersion.SCALE else 1.0
    assert fam.residual_sd(2.25) == expected_sd


def test_declared_values_of_the_built_ins():
    table = {
        n: (
            f.dispersion,
            f.sampler_dispersion,
            f.dispersion_symbol,
            f.residual_row,
            f.known_se,
            f.kernel_code,
        )
        for n in family_names()
        for f in [get_family(n)]
    }
    assert table == {
        "gaussian": (Dispersion.SCALE, "sigma", "σ", True, True, 2),
        "binomial": (Dispersion.NONE, None, "", False, False, 0),
        "poisson": (Dispersion.NONE, None, "", False, False, 1),
        "Gamma": (Dispersion.SCALE, "shape", "φ", False, False, 3),
        "inverse_gaussian": (Dispersion.SCALE, "shape", "φ", False, False, 4),
        "negative_binomial": (Dispersion.SHAPE, "shape", "shape", False, False, 5),
    }
    # the sampler's shape is 1 / phi for Gamma and inverse Gaussian, the NB shape itself, sigma^2 for Gaussian
    assert get_family("Gamma").dispersion_from_sampled(4.0) == 0.25
    assert get_family("negative_binomial").dispersion_from_sampled(4.0) == 4.0
    assert get_family("gaussian").dispersion_from_sampled(3.0) == 9.0
    assert [n for n in family_names() if get_family(n).trials_response] == ["binomial"]
    assert [n for n in family_names() if get_family(n).bounded_mean] == ["binomial"]
    lmm = [(n, link) for n in family_names() for link in get_family(n).links if get_family(n, link).is_lmm]
    assert lmm == [("gaussian", "identity")]
    canonical = {n: get_family(n).canonical_link for n in family_names()}
    assert canonical == {
        "gaussian": "identity",
        "binomial": "logit",
        "poisson": "log",
        "Gamma": "inverse",
        "inverse_gaussian": "1/mu^2",
        "negative_binomial": None,
    }


def test_response_checks():
    y, w = np.array([0.0, 2.0, 1.5]), np.ones(3)
    with pytest.raises(DataError, match="Poisson response must be integer counts"):
        get_family("poisson").check(y, w)
    with pytest.raises(DataError, match="negative binomial response must be integer counts"):
        get_family("negative_binomial").check(y, w)
    with pytest.raises(DataError, match="Gamma response must be positive"):
        get_family("Gamma").check(y, w)
    with pytest.raises(DataError, match="binomial response must be 0/1"):
        get_family("binomial").check(y, w)
    assert get_family("binomial").valid_mu(np.array([0.2, 0.9]))
    assert not get_family("poisson").valid_mu(np.array([0.2, 0.0]))


# ---- registration -----------------------------------------------------------


def test_register_refuses_inconsistent_or_clashing_families():
    class NoName(Poisson):
        name = ""

    class BadLink(Poisson):
        name = "bad_link_test"
        default_link = "logit"

    class DispersionWithoutSampler(Poisson):
        name = "no_sampler_test"
        dispersion = Dispersion.SHAPE

    class Clash(Poisson):
        name = "poisson"

    for cls, msg in [
        (NoName, "has no name"),
        (BadLink, "default_link 'logit' is not among links"),
        (DispersionWithoutSampler, "sampler_dispersion"),
        (Clash, "'poisson' is taken by Poisson"),
    ]:
        with pytest.raises(FamilyError, match=msg):
            register_family(cls)
    assert family_names()[2] == "poisson" and get_family("poisson").__class__ is Poisson


def test_register_and_unregister():
    class Counts(Poisson):
        name = "counts_registry_test"

    register_family(Counts, aliases=("counts_alias_test",))
    try:
        assert isinstance(get_family("counts_alias_test"), Counts)
        assert "counts_registry_test" in family_names()
        register_family(Counts)  # the same class again: no clash
    finally:
        unregister_family("counts_registry_test")
    assert "counts_registry_test" not in family_names(aliases=True)
    assert "counts_alias_test" not in family_names(aliases=True)
    with pytest.raises(FamilyError, match="unknown family"):
        get_family("counts_alias_test")
    assert issubclass(Counts, Family)
