"""The record of an F test of ``L beta = rhs`` and the names of the denominator-df methods.

Computed by :mod:`multilevel.lmm.satterthwaite` (Satterthwaite, lmerTest's) and
:mod:`multilevel.lmm.kenward_roger` (Kenward-Roger, pbkrtest's).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..errors import ModelError
from ..model.pvalues import f_sf

DDF_METHODS = {
    "satterthwaite": "satterthwaite",
    "kenward-roger": "kenward-roger",
    "kenward_roger": "kenward-roger",
    "kr": "kenward-roger",
}


def ddf_method(ddf: str) -> str:
    """The canonical name of a denominator-df method (``ModelError`` for unknown names).

    Examples
    --------
    >>> ddf_method("Kenward-Roger")
    'kenward-roger'
    """
    key = str(ddf).strip().lower().replace(" ", "-")
    if key not in DDF_METHODS:
        import difflib

        close = difflib.get_close_matches(key, list(DDF_METHODS), n=1, cutoff=0.4)
        hint = f"; did you mean {DDF_METHODS[close[0]]!r}?" if close else ""
        raise ModelError(f"ddf must be 'satterthwaite' or 'kenward-roger', got {ddf!r}{hint}")
    return DDF_METHODS[key]


@dataclass(frozen=True)
class FTest:
    """One F test of ``L beta = rhs``: lmerTest's row of an anova table.

    ``F`` is the statistic as tested (Kenward-Roger: scaled by ``f_scaling``);
    ``mean_sq = F_unscaled sigma^2`` and ``sum_sq = mean_sq num_df`` as lmerTest reports them.
    """

    F: float
    num_df: int
    den_df: float
    p_value: float
    method: str
    f_scaling: float = 1.0
    sum_sq: float = math.nan
    mean_sq: float = math.nan

    def as_row(self) -> dict[str, float]:
        return {
            "Sum Sq": self.sum_sq,
            "Mean Sq": self.mean_sq,
            "NumDF": self.num_df,
            "DenDF": self.den_df,
            "F value": self.F,
            "Pr(>F)": self.p_value,
        }


def empty_test(method: str) -> FTest:
    """The test of no contrasts (a term with no estimable rows).

    Examples
    --------
    >>> empty_test("satterthwaite").num_df
    0
    """
    nan = math.nan
    return FTest(nan, 0, nan, nan, method)


def make_test(F_unscaled: float, q: int, ddf: float, sigma: float, method: str, scale: float = 1.0) -> FTest:
    """The record of a test: ``F = scale * F_unscaled`` on (q, ddf) df.

    Examples
    --------
    >>> round(make_test(4.0, 1, 20.0, 1.0, "satterthwaite").p_value, 4)
    0.0593
    """
    F = F_unscaled * scale
    p = f_sf(float(F), q, ddf) if np.isfinite(F) else math.nan
    ms = F_unscaled * sigma**2
    return FTest(float(F), int(q), float(ddf), p, method, float(scale), float(ms * q), float(ms))
