"""Profiles and confidence intervals of a mixed model, for linear and generalized fits alike.

The methods supply a profiler (:class:`multilevel.lmm.profile.LmmProfiler`,
:class:`multilevel.glmm.profile.GlmmProfiler`); this module turns it into lme4's
``profile()`` record (:class:`Profile`) and ``confint()`` tables, and checks the
arguments (``parm``, ``level``, ``method``) with messages that suggest the
closest valid names.

Parameter names are lme4's ``oldNames = FALSE`` names for the random-effect
parameters (``sd_(Intercept)|Subject``, ``cor_Days.(Intercept)|Subject``),
``sigma`` for the residual SD, and the fit's own fixed-effect names
(``Intercept``, ``period[T.2]``, as in ``fit.fixef``). ``parm`` also takes
lme4's ``"theta_"`` (every random-effect parameter and sigma) and ``"beta_"``
(every fixed effect).
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from ..errors import ConvergenceWarning, ModelError, warn
from ..optim.profile import BETTER_TOL, Profiler, ZetaTrace

__all__ = ["METHODS", "Profile", "check_level", "check_method", "confint", "profile_model"]

METHODS = ("profile", "wald", "boot")


def check_level(level: Any) -> float:
    """A confidence level strictly between 0 and 1.

    >>> check_level(0.9)
    0.9
    """
    if isinstance(level, bool) or not isinstance(level, (int, float, np.floating, np.integer)):
        raise ModelError(f"level must be a number between 0 and 1 (e.g. 0.95), got {level!r}")
    lv = float(level)
    if not 0.0 < lv < 1.0:
        hint = f"; for a {lv:g}% interval give level={lv / 100:g}" if 1.0 < lv < 100.0 else ""
        raise ModelError(f"level must be between 0 and 1 (exclusive), got {level!r}{hint}")
    return lv


def _suggest(word: str, options: list[str]) -> str:
    close = difflib.get_close_matches(word, options, n=3, cutoff=0.5)
    if not close:
        low = {o.lower(): o for o in options}
        close = [low[c] for c in difflib.get_close_matches(word.lower(), list(low), n=3, cutoff=0.5)]
    return f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""


def check_method(method: Any) -> str:
    """``"profile"``, ``"wald"`` or ``"boot"`` (lme4's ``"Wald"`` accepted).

    >>> check_method("Wald")
    'wald'
    """
    if isinstance(method, str) and method.lower() in METHODS:
        return method.lower()
    hint = _suggest(method, list(METHODS)) if isinstance(method, str) else ""
    raise ModelError(f"method must be one of {', '.join(METHODS)}, got {method!r}{hint}")


def resolve_parm(parm: Any, names: tuple[str, ...], n_var: int) -> list[int]:
    """Positions of the parameters ``parm`` asks for (None: all) among ``names``; ``n_var``
    is how many of them lead as variance parameters (``"theta_"``).

    >>> resolve_parm(["beta_", "sigma"], ("sd_(Intercept)|g", "sigma", "Intercept", "x"), 2)
    [2, 3, 1]
    """
    if parm is None:
        return list(range(len(names)))
    items = [parm] if isinstance(parm, (str, int, np.integer)) else list(parm)
    out: list[int] = []
    for it in items:
        if isinstance(it, str) and it in ("theta_", "beta_"):
            out.extend(range(n_var) if it == "theta_" else range(n_var, len(names)))
        elif isinstance(it, str):
            if it not in names:
                raise ModelError(
                    f"no parameter {it!r} in this model{_suggest(it, list(names))} (parameters: "
                    f"{', '.join(names)}; or 'theta_' / 'beta_')"
                )
            out.append(names.index(it))
        elif isinstance(it, (int, np.integer)) and not isinstance(it, bool) and 0 <= it < len(names):
            out.append(int(it))
        else:
            raise ModelError(
                f"parm must name parameters ({', '.join(names)}) or give their positions "
                f"0..{len(names) - 1}, got {it!r}"
            )
    return list(dict.fromkeys(out))


def _check_lower(traces: list[ZetaTrace], base: float) -> None:
    low = min((t.lowest for t in traces), default=base)
    if low < base - BETTER_TOL:
        warn(
            f"profiling found a deviance {base - low:.3g} below the fit's: the fit stopped short of "
            "its optimum, so the profile and its intervals are relative to a point that is not the "
            "best; refit (e.g. from the current estimates) and profile again",
            ConvergenceWarning,
        )


def _intervals(traces: list[ZetaTrace], level: float) -> np.ndarray:
    z = float(special.ndtri(0.5 + level / 2.0))
    return np.array([[t.crossing(-1, z), t.crossing(+1, z)] for t in traces])


def _frame(names: list[str], ci: np.ndarray, level: float, method: str) -> pd.DataFrame:
    df = pd.DataFrame(ci, index=pd.Index(names, name="parameter"), columns=["lower", "upper"])
    df.attrs.update(level=level, method=method)
    return df


def boot_table(ci: pd.DataFrame, names: tuple[str, ...], n_var: int, parm: Any, level: float) -> pd.DataFrame:
    """Bootstrap intervals (indexed by statistic) in the order and names of ``names``."""
    idx = resolve_parm(parm, names, n_var)
    rows = [names[i] for i in idx]
    return _frame(rows, ci.reindex(rows).to_numpy(dtype=float), level, "boot")


def confint_table(profiler: Profiler, n_var: int, parm: Any = None, level: float = 0.95) -> pd.DataFrame:
    """Profile intervals (columns ``lower``, ``upper``) of the parameters ``parm``.

    >>> import multilevel
    >>> m = multilevel.fit("Yield ~ 1 + (1 | Batch)", multilevel.load_dataset("Dyestuff"))
    >>> confint_table(m._profiler(), 2, "sigma").round(2).values.tolist()
    [[38.23, 67.66]]
    """
    level = check_level(level)
    idx = resolve_parm(parm, profiler.names, n_var)
    traces = [ZetaTrace(profiler, i) for i in idx]
    ci = _intervals(traces, level)
    _check_lower(traces, profiler.base)
    return _frame([profiler.names[i] for i in idx], ci, level, "profile")


def wald_table(
    names: tuple[str, ...], n_var: int, fixef: np.ndarray, se: np.ndarray, parm: Any, level: float
) -> pd.DataFrame:
    """lme4's ``confint(method = "Wald")``: estimate -+ z SE for the fixed effects, NaN for
    the variance parameters (which have no Wald interval there).

    >>> import numpy as np
    >>> wald_table(("sigma", "x"), 1, np.array([1.0]), np.array([0.5]), None, 0.95).round(3).values.tolist()
    [[nan, nan], [0.02, 1.98]]
    """
    level = check_level(level)
    idx = resolve_parm(parm, names, n_var)
    z = float(special.ndtri(0.5 + level / 2.0))
    ci = np.full((len(names), 2), np.nan)
    ci[n_var:, 0] = fixef - z * se
    ci[n_var:, 1] = fixef + z * se
    return _frame([names[i] for i in idx], ci[idx], level, "wald")


def confint(
    make_profiler: Callable[[], Profiler],
    names: tuple[str, ...],
    n_var: int,
    fixef: np.ndarray,
    se: np.ndarray,
    *,
    parm: Any = None,
    level: float = 0.95,
    method: str = "profile",
) -> pd.DataFrame:
    """lme4's ``confint()`` of a fit: the arguments checked before any work, then profile
    intervals (from ``make_profiler()``) or Wald ones. What ``fit.confint()`` calls.

    >>> import numpy as np
    >>> confint(lambda: None, ("sigma", "x"), 1, np.array([1.0]), np.array([0.5]), method="wald").shape
    (2, 2)
    """
    method = check_method(method)
    level = check_level(level)
    resolve_parm(parm, names, n_var)
    if method == "wald":
        return wald_table(names, n_var, fixef, se, parm, level)
    return confint_table(make_profiler(), n_var, parm, level)


@dataclass(frozen=True)
class Profile:
    """lme4's ``profile()`` of a fit: the zeta trace of every parameter profiled.

    ``table`` is long, as lme4's: one row per profile point, with the parameter
    profiled (``parameter``), its value (``value``), ``zeta`` and every parameter
    at that point (one column each). ``estimate`` holds the estimates on the same
    scale and ``deviance`` the minimum. :meth:`confint` finds where the traces
    cross ``-+ z`` (Brent's method on zeta, from the points already computed).

    Examples
    --------
    >>> import multilevel
    >>> m = multilevel.fit("Yield ~ 1 + (1 | Batch)", multilevel.load_dataset("Dyestuff"))
    >>> pr = m.profile("sigma", points=3)
    >>> pr.zeta("sigma")["zeta"].round(2).tolist()
    [-3.37, -1.96, -0.87, 0.0, 1.49, 2.56, 3.37]
    """

    names: tuple[str, ...]
    estimate: pd.Series
    deviance: float
    table: pd.DataFrame
    traces: tuple[ZetaTrace, ...] = field(repr=False)

    def zeta(self, name: str) -> pd.DataFrame:
        """The trace of one parameter: its values and zeta, increasing."""
        if name not in self.names:
            raise ModelError(f"{name!r} was not profiled{_suggest(name, list(self.names))}")
        rows = self.table[self.table["parameter"] == name]
        return rows[["value", "zeta"]].reset_index(drop=True)

    def confint(self, level: float = 0.95) -> pd.DataFrame:
        """Profile intervals of the parameters profiled (columns ``lower``, ``upper``)."""
        level = check_level(level)
        return _frame(list(self.names), _intervals(list(self.traces), level), level, "profile")


def profile_model(
    profiler: Profiler, n_var: int, parm: Any = None, *, alphamax: float = 0.01, points: int = 8
) -> Profile:
    """Trace zeta for the parameters ``parm`` out to lme4's cutoff
    ``sqrt(qchisq(1 - alphamax, number of parameters))`` (or each bound), with
    ``points`` points evenly spaced on each side of every estimate. What ``fit.profile()``
    calls.

    >>> import multilevel
    >>> m = multilevel.fit("Yield ~ 1 + (1 | Batch)", multilevel.load_dataset("Dyestuff"))
    >>> profile_model(m._profiler(), 2, "Intercept", points=2).table.shape
    (5, 6)
    """
    if not (isinstance(alphamax, float) and 0.0 < alphamax < 1.0):
        raise ModelError(f"alphamax must be a number between 0 and 1, got {alphamax!r}")
    if isinstance(points, bool) or not isinstance(points, (int, np.integer)) or points < 1:
        raise ModelError(f"points must be a positive integer (points on each side), got {points!r}")
    idx = resolve_parm(parm, profiler.names, n_var)
    zmax = math.sqrt(float(special.chdtri(len(profiler.names), alphamax)))
    traces = [ZetaTrace(profiler, i) for i in idx]
    frames = []
    for t in traces:
        vals, zs, full = t.table(t.fill(zmax, int(points)))
        f = pd.DataFrame(full, columns=list(profiler.names))
        f.insert(0, "zeta", zs)
        f.insert(0, "value", vals)
        f.insert(0, "parameter", t.name)
        frames.append(f)
    _check_lower(traces, profiler.base)
    table = pd.concat(frames, ignore_index=True)
    names = tuple(profiler.names[i] for i in idx)
    est = pd.Series(profiler.estimate, index=list(profiler.names), name="estimate")
    return Profile(names, est, profiler.base, table, tuple(traces))
