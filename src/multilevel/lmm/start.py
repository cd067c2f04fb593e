"""Starting values for theta from the cross-products (one-way ANOVA moments).

lme4 starts every template at the identity. A start near the optimum saves
many evaluations of the objective on large models, where each costs a dense
Cholesky. For every random intercept the one-way ANOVA estimator of its
variance (on the residuals of the fixed-effect fit, ignoring the other
factors) gives ``theta = sd_group / sd_residual``; slopes and correlations keep
lme4's start. Everything comes from the cross-products, so the start costs
nothing that grows with the number of rows.
"""

from __future__ import annotations

import numpy as np

from ..linalg.crossprod import CrossProducts, as_dense
from ..model.spec import ModelSpec

MIN_START = 0.1
MAX_START = 3.0


def _level_stats(
    cp: CrossProducts, spec: ModelSpec, k: int, a: int, beta: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Per-level weighted counts and residual sums for column ``a`` of block ``k``."""
    lay = cp.layout
    p, mz = lay.p, lay.mz
    if k == 0:
        rows = np.arange(lay.n1) * lay.q1 + a
        counts = cp.A11[:, a, a]
        A = cp.A1R[rows]
        zx = as_dense(A[:, mz : mz + p])
        zy = as_dense(A[:, [mz + p]]).ravel()
    else:
        start = sum(g.size for g in spec.groupings[1:k])
        g = spec.groupings[k]
        idx = start + np.arange(g.n_levels) * g.q + a
        counts = cp.ARR[idx, idx]
        zx = cp.ARR[np.ix_(idx, np.arange(mz, mz + p))]
        zy = cp.ARR[idx, mz + p]
    return counts, zy - zx @ beta


def moment_start(spec: ModelSpec, cp: CrossProducts) -> np.ndarray:
    """Theta to start the optimizer from (lme4's start where no moment applies)."""
    tm = spec.theta_map
    theta = tm.initial()
    lay = cp.layout
    p, mz = lay.p, lay.mz
    XX = cp.ARR[mz : mz + p, mz : mz + p]
    Xy = cp.ARR[mz : mz + p, mz + p]
    yy = cp.ARR[mz + p, mz + p]
    try:
        beta = np.linalg.solve(XX, Xy) if p else np.zeros(0)
    except np.linalg.LinAlgError:
        return theta
    n = cp.n
    rss = float(yy - beta @ Xy)
    if not np.isfinite(rss) or rss <= 0:
        return theta
    between = {}
    for k, g in enumerate(spec.groupings):
        if "Intercept" not in g.columns:
            continue
        a = g.columns.index("Intercept")
        counts, sums = _level_stats(cp, spec, k, a, beta)
        used = counts > 0
        L = int(used.sum())
        if L < 2 or n <= L:
            continue
        ssb = float(np.sum(sums[used] ** 2 / counts[used]))
        msb = ssb / (L - 1)
        msw = max(rss - ssb, 0.0) / (n - L)
        n0 = (n - float(np.sum(counts[used] ** 2)) / n) / (L - 1)
        between[k] = (a, max((msb - msw) / n0, 0.0))
    if not between:
        return theta
    resid_var = max(rss / n - sum(v for _, v in between.values()), 0.1 * rss / n)
    if spec.parsed.se is not None:
        resid_var = 1.0  # known residual SEs: the weights make the residual variance 1
    for i, (b, r, c) in enumerate(zip(tm.block.tolist(), tm.row.tolist(), tm.col.tolist())):
        if b in between and r == c == between[b][0]:
            theta[i] = float(np.clip(np.sqrt(between[b][1] / resid_var), MIN_START, MAX_START))
    return theta
