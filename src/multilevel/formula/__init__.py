"""Formula language: lme4 random-effect bars and brms response additions."""

from .parse import parse_formula
from .terms import ParsedFormula, RandomTerm

__all__ = ["ParsedFormula", "RandomTerm", "parse_formula"]
