"""Contrasts of estimated marginal means, with Tukey, Holm or Bonferroni adjustment.

Within each ``by`` group the contrasts are linear functions ``C K beta`` of the means'
functions ``K``; each has its own SE and df (the fit's df of that linear function, as
emmeans asks pbkrtest or lmerTest per contrast). Tukey's p-value of a pairwise
contrast is ``P(Q > sqrt(2) |t|)`` for the studentized range of the group's number of
means on the contrast's df; Holm and Bonferroni adjust over the group's contrasts.
Confidence limits use the same family (Bonferroni's for Holm, as emmeans).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import ModelError
from .columns import level_name
from .pvalues import t_quantile, t_sf

if TYPE_CHECKING:
    from .emmeans import Emmeans

ADJUST = ("tukey", "holm", "bonferroni", "none")
RATIO_LINKS = {"log": "ratio", "logit": "odds.ratio"}


def _label(table: pd.DataFrame, r: int, specs: tuple[str, ...]) -> str:
    parts = []
    for v in specs:
        text = level_name(table[v].iloc[r])
        try:
            float(text)
            text = f"{v}{text}"  # numeric-looking levels carry the variable's name, as emmeans
        except ValueError:
            pass
        parts.append(text)
    return " ".join(parts)


def _weights(method: Any, labels: list[str]) -> tuple[np.ndarray, list[str], bool]:
    """Contrast rows over a group's means, their names, and whether they are pairwise
    (pairwise names are "first - second" with ``" - "`` to be replaced by the caller)."""
    k = len(labels)
    if isinstance(method, str):
        if method not in ("pairwise", "revpairwise"):
            raise ModelError(f"method must be 'pairwise', 'revpairwise' or contrast weights, got {method!r}")
        pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
        if method == "revpairwise":
            pairs = [(j, i) for i in range(k) for j in range(i + 1, k)]
        C = np.zeros((len(pairs), k))
        for r, (i, j) in enumerate(pairs):
            C[r, i], C[r, j] = 1.0, -1.0
        return C, [f"{labels[i]}\x1f{labels[j]}" for i, j in pairs], True
    if isinstance(method, dict):
        names, rows = list(method), [np.asarray(w, dtype=float) for w in method.values()]
    else:
        rows = list(np.atleast_2d(np.asarray(method, dtype=float)))
        names = [f"c{i + 1}" for i in range(len(rows))]
    C = np.array(rows)
    if C.ndim != 2 or C.shape[1] != k:
        raise ModelError(
            f"contrast weights need one weight per mean of a group ({k}: {labels}), got {C.shape}"
        )
    return C, names, False


def _adjust(p: np.ndarray, t: np.ndarray, df: np.ndarray, adjust: str, k: int) -> np.ndarray:
    m = p.size
    if adjust == "tukey":
        from scipy import stats  # the studentized range only: scipy.stats costs ~0.2 s to import

        return np.array([stats.studentized_range.sf(math.sqrt(2) * abs(ti), k, d) for ti, d in zip(t, df)])
    if adjust == "bonferroni":
        return np.minimum(1.0, p * m)
    if adjust == "holm":
        order = np.argsort(p)
        adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
        out = np.empty(m)
        out[order] = np.minimum(1.0, adj)
        return out
    return p


def _critical(level: float, df: float, adjust: str, k: int, m: int) -> float:
    if adjust == "tukey":
        from scipy import stats

        return float(stats.studentized_range.ppf(level, k, df)) / math.sqrt(2)
    if adjust in ("holm", "bonferroni"):
        level = 1 - (1 - level) / m
    q = 1 - (1 - level) / 2
    return t_quantile(q, float(df))


def _group_rows(emm: Emmeans) -> list[tuple[dict, np.ndarray]]:
    tab = emm.table
    by = list(emm.by)
    if not by:
        return [({}, np.arange(len(tab)))]
    codes = tab[by].astype(str).agg("\x1f".join, axis=1).to_numpy()
    return [
        (tab.loc[codes == c, by].iloc[0].to_dict(), np.flatnonzero(codes == c)) for c in dict.fromkeys(codes)
    ]


def contrast_table(emm: Emmeans, method: Any = "pairwise", adjust: str | None = None) -> pd.DataFrame:
    """The contrasts of ``emm`` (see :meth:`multilevel.model.emmeans.Emmeans.contrast`).

    Examples
    --------
    >>> import multilevel
    >>> m = multilevel.fit("Weight ~ Time + Cu + (1 | Pig)", multilevel.load_dataset("dietox"))
    >>> contrast_table(m.emmeans("Cu"), "pairwise", "holm").attrs["adjust"]
    'holm'
    """
    specs = tuple(s for s in emm.specs if s not in emm.by)
    ratio = RATIO_LINKS.get(getattr(emm.link, "name", ""), None) if emm.scale == "response" else None
    out = []
    for keys, rows in _group_rows(emm):
        labels = [_label(emm.table, int(r), specs) for r in rows]
        C, names, pairwise = _weights(method, labels)
        adj = adjust if adjust is not None else ("tukey" if pairwise else "none")
        if adj not in ADJUST:
            raise ModelError(f"adjust must be one of {ADJUST}, got {adj!r}")
        if adj == "tukey" and not pairwise:
            raise ModelError("Tukey's adjustment is for pairwise comparisons; use 'holm' or 'bonferroni'")
        if pairwise:
            sep = " / " if ratio else " - "
            names = [n.replace("\x1f", sep) for n in names]
        out.append(_one_group(emm, keys, C @ emm.K[rows], names, adj, len(rows), ratio))
    return pd.concat(out, ignore_index=True)


def _one_group(emm, keys, L, names, adjust, k, ratio) -> pd.DataFrame:
    est = L @ emm.beta
    se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", L, emm.V, L), 0.0))
    df = np.asarray(emm.df_function(L), dtype=float)
    t = est / se
    p = np.array([2 * float(t_sf(abs(x), d)) for x, d in zip(t, df)])
    p_adj = _adjust(p, t, df, adjust, k)
    crit = np.array([_critical(emm.level, d, adjust, k, len(est)) for d in df])
    lo, hi = est - crit * se, est + crit * se
    frame = pd.DataFrame({"contrast": names})
    for key, value in keys.items():
        frame[key] = value
    if ratio:
        frame[ratio], frame["SE"] = np.exp(est), np.exp(est) * se
        lo, hi = np.exp(lo), np.exp(hi)
    else:
        frame["estimate"], frame["SE"] = est, se
    frame["df"], frame["lower.CL"], frame["upper.CL"] = df, lo, hi
    frame["z.ratio" if np.all(~np.isfinite(df)) else "t.ratio"] = t
    frame["p.value"] = p_adj
    frame.attrs["adjust"] = adjust
    return frame
