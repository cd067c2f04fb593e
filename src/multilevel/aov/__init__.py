"""Classical ANOVA of designed experiments: Error() strata, expected mean squares, moment estimates.

``aov("yield ~ N*P*K + Error(block)", data)`` gives R's ``summary(aov(...))`` tables
per stratum, the expected mean squares of the strata's residual mean squares, the
method-of-moments variance components (negative values reported and flagged) and
their Satterthwaite intervals; :func:`format_aov` is its text.
"""

from .data import aov_data, is_balanced
from .fit import aov
from .parse import AovFormula, parse_aov
from .result import AovResult
from .text import format_aov

__all__ = ["AovFormula", "AovResult", "aov", "aov_data", "format_aov", "is_balanced", "parse_aov"]
