"""Nonlinear least squares by Levenberg-Marquardt, for a few parameters.

Minimizes ``|r(x)|^2`` from the residuals and their Jacobian. Each step solves
``(J'J + lam D) d = -J'r`` with ``D`` the diagonal of ``J'J`` (Marquardt's
scaling, so the step does not depend on the parameters' units); a step that
lowers the sum of squares is taken and ``lam`` shrinks by the gain ratio
(Nielsen's rule), one that does not is refused and ``lam`` grows, as it does for a
step beyond half a parameter's size (or 1): a trust region in relative units. It
stops when the predicted decrease, or the step, is below the tolerances.

Used for the population fit that starts a nonlinear mixed model (as R's ``nls``
follows ``getInitial``), where SciPy's ``least_squares`` would cost more to
import than the fit takes.

Examples
--------
>>> import numpy as np
>>> t = np.array([0.0, 1.0, 2.0, 3.0])
>>> y = 2.0 * np.exp(-0.5 * t)
>>> def rj(x):
...     e = np.exp(-x[1] * t)
...     return y - x[0] * e, np.stack([-e, x[0] * t * e], axis=1)
>>> fit = levenberg_marquardt(rj, np.array([1.0, 1.0]))
>>> np.round(fit.x, 8).tolist(), fit.converged
([2.0, 0.5], True)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

ResidualFunction = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]

#: the largest step, relative to ``max(|x|, 1)`` per parameter: a Gauss-Newton step far
#: outside where the linearization holds can land on a plateau (a logistic's scale
#: driven to 0 makes a step function, where every derivative vanishes) and stop there
MAX_STEP = 0.5


@dataclass(frozen=True)
class LeastSquaresResult:
    """The solution, its residual sum of squares, evaluations and verdict."""

    x: np.ndarray
    rss: float
    evaluations: int
    converged: bool


def _rss(r: np.ndarray) -> float:
    v = float(r @ r)
    return v if math.isfinite(v) else math.inf


def levenberg_marquardt(
    rj: ResidualFunction,
    x0: np.ndarray,
    *,
    ftol: float = 1e-12,
    xtol: float = 1e-10,
    max_evals: int = 500,
) -> LeastSquaresResult:
    """Minimize ``|r(x)|^2``; ``rj(x) -> (residuals (n,), Jacobian (n, k))``; residuals
    that are not finite make the point unacceptable."""
    x = np.asarray(x0, dtype=float).copy()
    r, J = rj(x)
    f, evals = _rss(r), 1
    if not math.isfinite(f):
        return LeastSquaresResult(x, f, evals, False)
    lam, nu = 1e-3, 2.0
    while evals < max_evals and lam <= 1e16:
        A, g = J.T @ J, J.T @ r
        D = np.maximum(np.diag(A), 1e-300)
        try:
            d = np.linalg.solve(A + lam * np.diag(D), -g)
        except np.linalg.LinAlgError:
            lam, nu = lam * nu, 2.0 * nu
            continue
        if not np.all(np.isfinite(d)):
            return LeastSquaresResult(x, f, evals, False)
        if float(np.max(np.abs(d) / np.maximum(np.abs(x), 1.0))) > MAX_STEP:
            lam, nu = lam * nu, 2.0 * nu  # beyond the region the linear model is trusted in
            continue
        predicted = -float(d @ (2.0 * g + A @ d))  # the linear model's decrease
        if not (predicted > ftol * f) or float(np.max(np.abs(d) / (np.abs(x) + xtol))) < xtol:
            return LeastSquaresResult(x, f, evals, True)
        rt, Jt = rj(x + d)
        ft = _rss(rt)
        evals += 1
        gain = (f - ft) / predicted if math.isfinite(ft) else -1.0
        if gain > 0:
            x, r, J, f = x + d, rt, Jt, ft
            lam *= max(1.0 / 3.0, 1.0 - (2.0 * gain - 1.0) ** 3)
            nu = 2.0
        else:
            lam, nu = lam * nu, 2.0 * nu
    return LeastSquaresResult(x, f, evals, False)
