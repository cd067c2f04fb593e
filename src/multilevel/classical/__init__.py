"""Classical ANOVA of designed experiments: Error() strata, expected mean squares, moment estimates.

``aov("yield ~ N*P*K + Error(block)", data)`` gives R's ``summary(aov(...))`` tables
per stratum, the expected mean squares of the strata's residual mean squares, the
method-of-moments variance components (negative values reported and flagged) and
their Satterthwaite intervals, REML beside them; :func:`format_aov` is its text.

>>> import pandas as pd
>>> from multilevel.classical import aov
>>> d = pd.DataFrame({"plot": list("aabbccdd"), "trt": list("xyxyxyxy"),
...                   "y": [4.1, 5.0, 3.2, 4.4, 5.0, 6.1, 3.9, 4.8]})
>>> r = aov("y ~ trt + Error(plot)", d)
>>> list(r.strata), int(r.strata["Within"].loc["trt", "Df"])
(['plot', 'Within'], 1)
>>> {k: round(v, 5) for k, v in r.estimates.items()}
{'plot': 0.52833, 'Residual': 0.01125}
"""

from .data import aov_data, is_balanced
from .fit import aov
from .parse import AovFormula, parse_aov
from .result import AovResult
from .text import format_aov

__all__ = ["AovFormula", "AovResult", "aov", "aov_data", "format_aov", "is_balanced", "parse_aov"]
