"""The parametric bootstrap of a fitted mixed model: lme4's ``bootMer(type = "parametric")``.

Responses are simulated at the fitted parameters (new group effects drawn from
their fitted distribution, or held at their conditional modes with
``use_u=True``), the model is refitted to each, and a statistic is recorded per
replicate. The default statistic is lme4's ``c(fixef(x),
as.data.frame(VarCorr(x))$sdcor)``: the fixed effects, then per grouping factor
and term the SDs and correlations, then the residual SD. Intervals are boot's
``boot.ci``: percentile (order statistics interpolated on the normal scale, as
``norm.inter``), basic, and normal (bias-corrected, with the replicates' SD).

Replicates whose refit failed (no convergence) are kept as rows of NaN and
counted; singular refits are counted and flagged, as ``bootMer`` reports them.
The refits come from the fit's ``_refit_responses`` hook (the batched engines
of :mod:`multilevel.lmm.refits` and :mod:`multilevel.glmm.refits`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from ..errors import ModelError
from .replicates import check_workers, refit_columns
from .varpar import lme4_column

__all__ = [
    "BOOT_TYPES",
    "BootstrapResult",
    "default_statistic",
    "norm_inter",
    "parametric_bootstrap",
    "replicate_statistics",
]

BOOT_TYPES = ("perc", "basic", "norm")


def sdcor_names(spec: Any, residual: bool, correlations: bool = True) -> list[str]:
    """Names of the SDs and correlations (or covariances) in ``as.data.frame(VarCorr())`` order."""
    names = []
    kind = "cor" if correlations else "cov"
    for g in spec.groupings:
        cols = [lme4_column(c) for c in g.columns]
        for t in g.terms:
            idx = range(t.offset, t.offset + t.q)
            names += [f"sd_{cols[i]}|{g.name}" for i in idx]
            names += [
                f"{kind}_{cols[j]}.{cols[i]}|{g.name}" for a, i in enumerate(idx) for j in list(idx)[a + 1 :]
            ]
    return [*names, "sigma"] if residual else names


def sdcor_values(
    spec: Any, theta: np.ndarray, scale: np.ndarray, residual: np.ndarray | None, correlations: bool = True
) -> np.ndarray:
    """SDs and correlations (R, m) from theta (R, k), the scale of theta (R,) and the
    residual SDs (R,), if the model has them; covariances in place of the correlations
    with ``correlations=False`` (defined, and smooth, where an SD is 0)."""
    theta = np.atleast_2d(theta)
    R = theta.shape[0]
    tm = spec.theta_map
    cols = []
    for b, g in enumerate(spec.groupings):
        T = np.zeros((R, g.q, g.q))
        pos = np.flatnonzero(tm.block == b)
        T[:, tm.row[pos], tm.col[pos]] = theta[:, pos]
        S = scale[:, None, None] ** 2 * (T @ np.swapaxes(T, 1, 2))
        sd = np.sqrt(np.maximum(np.diagonal(S, axis1=1, axis2=2), 0.0))
        for t in g.terms:
            cols_t = list(range(t.offset, t.offset + t.q))
            cols += [sd[:, c] for c in cols_t]
            for a, i in enumerate(cols_t):
                for j in cols_t[a + 1 :]:
                    if not correlations:
                        cols.append(S[:, i, j])
                        continue
                    den = sd[:, i] * sd[:, j]
                    with np.errstate(divide="ignore", invalid="ignore"):
                        cols.append(np.where(den > 0, S[:, i, j] / den, np.nan))
    if residual is not None:
        cols.append(np.asarray(residual, dtype=float))
    return np.column_stack(cols) if cols else np.zeros((R, 0))


def default_statistic(fit: Any, correlations: bool = True) -> pd.Series:
    """lme4's ``c(fixef(x), as.data.frame(VarCorr(x))$sdcor)`` of one fit, named
    (covariances in place of the correlations with ``correlations=False``)."""
    res = fit._residual_row
    values = sdcor_values(
        fit.spec,
        fit.theta[None],
        np.array([fit._re_scale]),
        None if res is None else np.array([res[1]]),
        correlations,
    )[0]
    names = [*fit.spec.fixed_names, *sdcor_names(fit.spec, res is not None, correlations)]
    return pd.Series(np.concatenate([fit.fixef.to_numpy(), values]), index=names)


def replicate_statistics(fit: Any, reps: Any, correlations: bool = True) -> np.ndarray:
    """(R, m): the fixed effects, SDs and correlations (or covariances) of each refit in
    ``reps`` (a :class:`ReplicateFits` of ``fit``'s model); NaN rows where one did not converge."""
    residual = reps.sigma if fit._residual_row is not None else None
    vc = sdcor_values(fit.spec, reps.theta, reps.scale, residual, correlations)
    values = np.column_stack([reps.beta, vc])
    values[~reps.converged] = np.nan
    return values


def norm_inter(t: np.ndarray, alpha: float) -> float:
    """The ``alpha`` quantile of replicates ``t`` as boot's percentile intervals take it:
    order statistic ``(R + 1) alpha``, interpolated between its neighbours on the
    normal-quantile scale (NaN replicates left out)."""
    t = np.sort(t[np.isfinite(t)])
    R = t.size
    if R == 0:
        return math.nan
    rk = (R + 1) * alpha
    k = math.floor(rk)
    if k <= 0:
        return float(t[0])
    if k >= R:
        return float(t[-1])
    if k == rk:
        return float(t[k - 1])
    z, z0, z1 = special.ndtri([alpha, k / (R + 1), (k + 1) / (R + 1)])
    return float(t[k - 1] + (z - z0) / (z1 - z0) * (t[k] - t[k - 1]))


@dataclass(frozen=True)
class BootstrapResult:
    """Replicates of a statistic under the fitted model (``bootMer``'s ``t``), with
    the statistic of the fit itself (``t0``) and every replicate's status."""

    t0: pd.Series
    replicates: pd.DataFrame
    converged: np.ndarray
    singular: np.ndarray
    seed: int
    use_u: bool
    seconds: float
    batched: int = 0

    @property
    def n(self) -> int:
        return int(self.converged.size)

    @property
    def n_failed(self) -> int:
        return int((~self.converged).sum())

    @property
    def n_singular(self) -> int:
        return int((self.singular & self.converged).sum())

    def confint(self, level: float = 0.95, method: str = "perc") -> pd.DataFrame:
        """Intervals per statistic: ``"perc"``, ``"basic"`` or ``"norm"`` (boot's types)."""
        if method not in BOOT_TYPES:
            raise ModelError(
                f"method must be one of {', '.join(BOOT_TYPES)} (boot's interval types), got {method!r}"
            )
        if not 0 < level < 1:
            raise ModelError(f"level must be between 0 and 1, got {level!r}")
        a = (1 - level) / 2
        rows = {}
        for name in self.replicates.columns:
            t = self.replicates[name].to_numpy(dtype=float)
            t0 = float(self.t0[name])
            if method == "norm":
                good = t[np.isfinite(t)]
                sd = float(np.std(good, ddof=1)) if good.size > 1 else math.nan
                centre = 2 * t0 - float(np.mean(good)) if good.size else math.nan
                z = float(special.ndtri(1 - a))
                rows[name] = (centre - z * sd, centre + z * sd)
            elif method == "perc":
                rows[name] = (norm_inter(t, a), norm_inter(t, 1 - a))
            else:
                rows[name] = (2 * t0 - norm_inter(t, 1 - a), 2 * t0 - norm_inter(t, a))
        return pd.DataFrame.from_dict(rows, orient="index", columns=["lower", "upper"])

    def summary(self) -> pd.DataFrame:
        """Per statistic: the fit's value, the replicates' mean, bias, SD and quantiles."""
        r = self.replicates
        return pd.DataFrame(
            {
                "original": self.t0,
                "mean": r.mean(),
                "bias": r.mean() - self.t0,
                "std. error": r.std(ddof=1),
                "2.5%": r.quantile(0.025),
                "50%": r.quantile(0.5),
                "97.5%": r.quantile(0.975),
            }
        )

    def __repr__(self) -> str:
        return (
            f"<BootstrapResult: {self.n} parametric replicates of {self.replicates.shape[1]} statistics; "
            f"{self.n_failed} failed, {self.n_singular} singular>"
        )


def parametric_bootstrap(
    fit: Any,
    n: int,
    *,
    statistic: Callable[[Any], Any] | None = None,
    seed: int | None = None,
    use_u: bool = False,
    workers: int | None = 1,
) -> BootstrapResult:
    """Simulate ``n`` responses from ``fit``, refit (on ``workers`` threads), and collect
    the statistic."""
    import time

    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ModelError(f"the number of bootstrap replicates must be a positive integer, got {n!r}")
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    t_start = time.perf_counter()
    Y = fit.simulate(int(n), seed=seed, use_modes=use_u).T  # (nobs, n)
    if statistic is None:
        t0 = default_statistic(fit)
        reps = refit_columns(fit, Y, check_workers(workers))
        table = pd.DataFrame(replicate_statistics(fit, reps), columns=t0.index)
        conv, sing, batched = reps.converged, reps.singular, reps.batched
    else:
        t0, table, conv, sing = _custom(fit, Y, statistic)
        batched = 0
    return BootstrapResult(
        t0=t0,
        replicates=table,
        converged=np.asarray(conv, dtype=bool),
        singular=np.asarray(sing, dtype=bool),
        seed=int(seed),
        use_u=use_u,
        seconds=time.perf_counter() - t_start,
        batched=batched,
    )


def _as_series(value: Any, names: Any = None) -> pd.Series:
    if isinstance(value, pd.Series):
        out = value.astype(float)
        return out if names is None or out.size != len(names) else out.set_axis(list(names))
    arr = np.atleast_1d(np.asarray(value, dtype=float))
    if arr.ndim != 1:
        raise ModelError(f"the bootstrap statistic must return numbers (a vector), got shape {arr.shape}")
    if names is not None and arr.size != len(names):
        return pd.Series(arr)
    return pd.Series(arr, index=names if names is not None else [f"t{i + 1}" for i in range(arr.size)])


def _custom(
    fit: Any, Y: np.ndarray, statistic: Callable[[Any], Any]
) -> tuple[pd.Series, pd.DataFrame, Any, Any]:
    """A user statistic: each replicate refitted to a full result, the statistic applied."""
    import warnings

    t0 = _as_series(statistic(fit))
    R = Y.shape[1]
    values = np.full((R, t0.size), np.nan)
    conv = np.zeros(R, dtype=bool)
    sing = np.zeros(R, dtype=bool)
    for r in range(R):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                m = fit.refit(Y[:, r])
            except (np.linalg.LinAlgError, ValueError, FloatingPointError, ModelError):
                continue
        conv[r], sing[r] = bool(m.converged), bool(m.singular)
        if conv[r]:
            v = _as_series(statistic(m), t0.index)
            if v.size != t0.size:
                raise ModelError(
                    f"the bootstrap statistic returned {v.size} values for replicate {r + 1} "
                    f"and {t0.size} for the fit; it must return the same number every time"
                )
            values[r] = v.to_numpy()
    return t0, pd.DataFrame(values, columns=t0.index), conv, sing
