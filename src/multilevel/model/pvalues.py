"""Two-sided p-values of t and z statistics, t quantiles, F tail probabilities and Wald
intervals, from ``scipy.special``.

``scipy.stats`` takes about 0.2 s to import, more than a small fit; the p-values of
a coefficient table need only the regularized incomplete beta function and erfc:
``P(|T_nu| > |t|) = I_{nu / (nu + t^2)}(nu / 2, 1 / 2)`` and
``P(|Z| > |z|) = erfc(|z| / sqrt 2)``.

>>> round(float(two_sided_t(2.0, 10.0)), 6)
0.073388
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..lazy import lazy_module

special = lazy_module("scipy.special")


def two_sided_t(t: np.ndarray | float, df: np.ndarray | float) -> np.ndarray:
    """``2 P(T_df > |t|)``; ``df = inf`` gives the normal p-value."""
    ta = np.abs(np.asarray(t, dtype=float))
    dfa = np.broadcast_to(np.asarray(df, dtype=float), ta.shape)
    t2 = ta * ta
    with np.errstate(invalid="ignore", divide="ignore"):
        # the complementary form where t^2 / (df + t^2) is small: 1 - x would round away
        tail = special.betainc(dfa / 2.0, 0.5, dfa / (dfa + t2))
        body = 1.0 - special.betainc(0.5, dfa / 2.0, t2 / (dfa + t2))
        p = np.where(t2 < dfa, body, tail)
    return np.where(np.isinf(dfa), two_sided_z(ta), p)


def two_sided_z(z: np.ndarray | float) -> np.ndarray:
    """``2 P(Z > |z|)`` for a standard normal Z (``math.erfc``: a coefficient table's few
    values need not load SciPy)."""
    a = np.abs(np.asarray(z, dtype=float)) / math.sqrt(2.0)
    return np.vectorize(math.erfc, otypes=[float])(a) if a.size else a


def t_sf(t: np.ndarray | float, df: np.ndarray | float) -> np.ndarray:
    """``P(T_df > t)`` as ``scipy.stats.t.sf`` computes it (``df = inf``: ``scipy.stats.norm.sf``)."""
    neg = -np.asarray(t, dtype=float)
    dfa = np.asarray(df, dtype=float)
    return np.where(np.isinf(dfa), special.ndtr(neg), special.stdtr(dfa, neg))


def t_quantile(p: float, df: float) -> float:
    """The ``p`` quantile of Student's t on ``df`` degrees of freedom (``inf``: the normal
    quantile; NaN df: NaN), as ``scipy.stats.t.ppf`` computes it."""
    if math.isnan(df):
        return math.nan
    return float(special.ndtri(p)) if math.isinf(df) else float(special.stdtrit(df, p))


def f_sf(F: float, q: float, ddf: float) -> float:
    """``P(F_{q, ddf} > F)`` as ``scipy.stats.f.sf`` computes it (1 below the support)."""
    return 1.0 if F < 0 else float(special.fdtrc(q, ddf, F))


def wald_interval(estimate: Any, se: Any, level: float = 0.95) -> dict[str, Any]:
    """The Wald interval ``estimate -+ z se`` as two columns named as R names them
    (``"2.5 %"``, ``"97.5 %"``)."""
    a = (1.0 - level) / 2.0
    z = float(special.ndtri(1.0 - a))
    return {_pct(a): estimate - z * se, _pct(1.0 - a): estimate + z * se}


def _pct(p: float) -> str:
    return f"{100 * p:.3g} %"
