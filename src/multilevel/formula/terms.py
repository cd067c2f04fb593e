"""Parsed-formula records: what the parser produces, before any data is seen."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RandomTerm:
    """One random-effects term ``(expr | group)`` after ``||`` and ``/`` expansion.

    Attributes
    ----------
    expr:
        Right-hand side of the term's model matrix, in formulaic syntax
        (``"1 + Days"``, ``"0 + Days"``).
    factors:
        Names of the variables whose interaction forms the grouping factor
        (``("cask", "batch")`` for ``cask:batch``).
    span:
        (start, end) of the bar term in the original formula, for error messages.
    """

    expr: str
    factors: tuple[str, ...]
    span: tuple[int, int] = (0, 0)

    @property
    def group(self) -> str:
        """Name of the grouping factor as lme4 prints it (``"cask:batch"``)."""
        return ":".join(self.factors)

    def __str__(self) -> str:
        return f"({self.expr} | {self.group})"


@dataclass(frozen=True)
class ParsedFormula:
    """A mixed-model formula split into its parts.

    ``fixed`` is a formulaic right-hand side; ``response`` a formulaic expression
    for the response (or ``None`` for ``cbind``); ``cbind`` holds the success and
    failure expressions of a binomial ``cbind(s, f)`` response; ``se`` the
    expression of known measurement-error SDs from brms's ``y | se(s)``;
    ``offsets`` expressions from ``offset(...)`` terms.
    """

    formula: str
    response: str | None
    fixed: str
    random: tuple[RandomTerm, ...]
    cbind: tuple[str, str] | None = None
    se: str | None = None
    offsets: tuple[str, ...] = field(default_factory=tuple)

    @property
    def groups(self) -> tuple[str, ...]:
        """Distinct grouping-factor names in order of first appearance."""
        seen: dict[str, None] = {}
        for t in self.random:
            seen.setdefault(t.group, None)
        return tuple(seen)
