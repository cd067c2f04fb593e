"""Split an ``aov`` formula into its treatment part and its ``Error()`` strata.

``"yield ~ N*P*K + Error(block)"`` has the treatment formula ``yield ~ N*P*K``
(materialized by formulaic) and one error term, ``block``; ``Error(batch/cask)``
expands as R's ``terms()`` does, to ``batch`` and ``batch:cask``. The parser never
touches data.

>>> spec = parse_aov("strength ~ 1 + Error(batch/cask)")
>>> spec.treatment, spec.error_terms
('strength ~ 1', (('batch',), ('batch', 'cask')))
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import FormulaError

_ERROR = re.compile(r"\bError\s*\(")
_NAME = re.compile(r"^[A-Za-z_.][A-Za-z0-9_.]*$")


@dataclass(frozen=True)
class AovFormula:
    """A parsed ``aov`` formula.

    ``treatment`` is the formula without ``Error()``; ``response`` its left side;
    ``error_terms`` the error strata as tuples of factor names, coarsest first, in
    R's order (by degree, then as written); empty without ``Error()``.
    """

    formula: str
    treatment: str
    response: str
    error_terms: tuple[tuple[str, ...], ...]

    @property
    def error_factors(self) -> tuple[str, ...]:
        """Every factor named in ``Error()``, once, in order of appearance."""
        return tuple(dict.fromkeys(v for t in self.error_terms for v in t))


def parse_aov(formula: str) -> AovFormula:
    """Parse ``formula`` (``response ~ treatments [+ Error(strata)]``) into an :class:`AovFormula`.

    Raises :class:`multilevel.errors.FormulaError` for a formula without a response,
    more than one ``Error()`` term, an empty or unbalanced ``Error(...)``, or an error
    stratum that is not made of plain column names.
    """
    if not isinstance(formula, str) or "~" not in formula:
        raise FormulaError(
            f"an aov formula needs a response and '~', e.g. 'yield ~ N*P*K + Error(block)'; got {formula!r}"
        )
    matches = list(_ERROR.finditer(formula))
    if len(matches) > 1:
        second = matches[1]
        raise FormulaError(
            "an aov formula takes one Error() term; put every stratum inside it, e.g. Error(a/b)",
            formula,
            (second.start(), second.end()),
        )
    response = formula.split("~", 1)[0].strip()
    if not response:
        raise FormulaError("the aov formula has no response left of '~'", formula, (0, 1))
    if not matches:
        return AovFormula(formula, formula.strip(), response, ())
    m = matches[0]
    close = _closing_paren(formula, m.end() - 1)
    inner = formula[m.end() : close].strip()
    if not inner:
        raise FormulaError(
            "Error() is empty; name the blocking factors, e.g. Error(block)", formula, (m.start(), close + 1)
        )
    treatment = _remove_span(formula, m.start(), close + 1)
    terms = _error_terms(inner, formula, (m.start(), close + 1))
    return AovFormula(formula, treatment, response, terms)


def _closing_paren(formula: str, open_at: int) -> int:
    depth = 0
    for i in range(open_at, len(formula)):
        if formula[i] == "(":
            depth += 1
        elif formula[i] == ")":
            depth -= 1
            if depth == 0:
                return i
    raise FormulaError("Error( has no closing ')'", formula, (open_at - 5, len(formula)))


def _remove_span(formula: str, start: int, end: int) -> str:
    """The formula without ``formula[start:end]`` and the '+' that joined it."""
    left, right = formula[:start].rstrip(), formula[end:].lstrip()
    if left.endswith("+"):
        left = left[:-1].rstrip()
    elif right.startswith("+"):
        right = right[1:].lstrip()
    if left.endswith("~"):
        joined = f"{left} {right}" if right else f"{left} 1"
    else:
        joined = f"{left} {right}" if right else left
    return " ".join(joined.split())


def _error_terms(inner: str, formula: str, span: tuple[int, int]) -> tuple[tuple[str, ...], ...]:
    """The strata of ``Error(inner)`` as R's ``terms()`` orders them (by degree, stable)."""
    from formulaic import Formula

    try:
        parsed = list(Formula(inner))
    except Exception as exc:  # formulaic raises many exception types
        raise FormulaError(f"cannot parse Error({inner}): {exc}", formula, span) from exc
    terms: list[tuple[str, ...]] = []
    for term in parsed:
        names = tuple(str(f) for f in term.factors)
        if names == ("1",):
            continue
        bad = [n for n in names if not _NAME.match(n)]
        if bad:
            raise FormulaError(
                f"Error() strata are made of factor columns; {bad[0]!r} is an expression. "
                "Make it a column of the data first",
                formula,
                span,
            )
        terms.append(names)
    if not terms:
        raise FormulaError("Error() names no factor; e.g. Error(block)", formula, span)
    terms.sort(key=len)
    return tuple(terms)
