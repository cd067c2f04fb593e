"""Latent covariates in a formula: ``me(x, sdx)`` (measured with known error) and
``mi(x)`` (missing values modelled), brms's terms.

:func:`latent_terms` finds them in the fixed part of a formula and returns the
formula with each replaced by its column (``y ~ me(x, sdx) + z`` becomes
``y ~ x + z``), so that the materializer builds the design as usual; the method
then recomputes the columns it enters from the latent values. The terms enter as
main effects and in interactions (``me(x, sdx) * z``, as brms's special terms); one
inside a function or a random-effects term is refused, naming the term.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import FormulaError

_CALL = re.compile(r"\b(me|mi)\s*\(([^()]*)\)")
_NAME = re.compile(r"^[A-Za-z_.][\w.]*$")


@dataclass(frozen=True)
class LatentTerm:
    """One ``me(column, sd_column)`` or ``mi(column)`` term."""

    kind: str  # "me" or "mi"
    column: str
    sd_column: str | None = None

    @property
    def label(self) -> str:
        return f"me({self.column}, {self.sd_column})" if self.kind == "me" else f"mi({self.column})"


def _term(kind: str, args: str, formula: str, span: tuple[int, int]) -> LatentTerm:
    parts = [a.strip() for a in args.split(",")]
    if not all(_NAME.match(a) for a in parts):
        raise FormulaError(f"{kind}() takes column names, got {kind}({args})", formula, span)
    if kind == "me":
        if len(parts) != 2:
            raise FormulaError(
                "me() takes the observed column and the column of its known measurement SDs: me(x, sdx)",
                formula,
                span,
            )
        return LatentTerm("me", parts[0], parts[1])
    if len(parts) != 1:
        raise FormulaError(
            "mi() takes one column, whose missing values are modelled: mi(x) (a column both missing and "
            "measured with error, brms' mi(x, sdx), is not supported)",
            formula,
            span,
        )
    return LatentTerm("mi", parts[0])


def latent_terms(formula: str) -> tuple[str, tuple[LatentTerm, ...]]:
    """The formula with ``me()`` / ``mi()`` replaced by their columns, and the terms.

    Examples
    --------
    >>> latent_terms("y ~ me(x, sdx) + z + (1 | g)")
    ('y ~ x + z + (1 | g)', (LatentTerm(kind='me', column='x', sd_column='sdx'),))
    >>> latent_terms("y ~ x + (1 | g)")
    ('y ~ x + (1 | g)', ())
    """
    if "~" not in formula or not _CALL.search(formula):
        return formula, ()
    rhs_at = formula.index("~") + 1
    terms: list[LatentTerm] = []
    out, last = [], 0
    for m in _CALL.finditer(formula):
        span = (m.start(), m.end())
        if m.start() < rhs_at:
            raise FormulaError(f"{m.group(1)}() belongs on the right of ~", formula, span)
        depth = formula.count("(", rhs_at, m.start()) - formula.count(")", rhs_at, m.start())
        if depth > 0:
            raise FormulaError(
                f"{m.group(0)} inside a random-effects term or a function: {m.group(1)}() terms enter "
                "the fixed part, as main effects and in interactions",
                formula,
                span,
            )
        t = _term(m.group(1), m.group(2), formula, span)
        before, after = formula[: m.start()].rstrip(), formula[m.end() :].lstrip()
        if before.endswith("^") or after.startswith("^"):
            raise FormulaError(
                f"{t.label} raised to a power: {m.group(1)}() terms enter as main effects and in "
                f"products such as {t.label} * z",
                formula,
                span,
            )
        if any(x.column == t.column for x in terms):
            raise FormulaError(f"{t.column!r} appears in two latent terms", formula, span)
        terms.append(t)
        out.append(formula[last : m.start()] + t.column)
        last = m.end()
    out.append(formula[last:])
    return "".join(out), tuple(terms)
