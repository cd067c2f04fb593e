"""A deconvolution result as text and as plain data (NPMLE and g-model alike)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def prior_weights(result: Any) -> tuple[np.ndarray, np.ndarray]:
    """The grid and the prior's mass on it: an NPMLE's ``weights`` or a g-model's ``g``."""
    w = getattr(result, "weights", None)
    return np.asarray(result.grid, dtype=float), np.asarray(result.g if w is None else w, dtype=float)


def prior_moments(result: Any) -> dict[str, float]:
    """Mean, SD and quartiles of the estimated prior."""
    grid, w = prior_weights(result)
    mean = float(w @ grid)
    cdf = np.cumsum(w)
    q = {
        f"q{int(100 * p)}": float(grid[min(int(np.searchsorted(cdf, p)), grid.size - 1)])
        for p in (0.25, 0.5, 0.75)
    }
    return {"mean": mean, "sd": math.sqrt(max(float(w @ (grid - mean) ** 2), 0.0)), **q}


def format_deconvolution(result: Any) -> str:
    """The estimated prior in a few lines: method, fit, certificate, moments, atoms."""
    grid, w = prior_weights(result)
    npmle = hasattr(result, "weights")
    lines = [f"Deconvolution: {'NPMLE (Kiefer-Wolfowitz)' if npmle else 'g-model (Efron log-spline prior)'}"]
    n = getattr(result, "n", None) or len(getattr(result, "w", []))
    lines.append(f"  observations: {n}    grid: {grid.size} points on [{grid[0]:.4g}, {grid[-1]:.4g}]")
    lines.append(f"  log-likelihood: {result.loglik:.6f}    converged: {bool(result.converged)}")
    if npmle:
        lines.append(f"  optimality certificate max D = {result.kkt_max:.9f} (1 at the optimum)")
    m = prior_moments(result)
    quartiles = f"{m['q25']:.4g} / {m['q50']:.4g} / {m['q75']:.4g}"
    lines.append(f"  prior: mean {m['mean']:.4g}, SD {m['sd']:.4g}, quartiles {quartiles}")
    ge = getattr(result, "group_effects", None)
    if ge is not None:
        lines.append(
            f"  groups of {ge.grouping}: {len(ge.levels)}; the mixed model's normal prior has SD {ge.tau:.4g}"
        )
    if npmle:
        keep = w > 0
        lines.append(f"  support: {int(keep.sum())} atoms")
        order = np.argsort(-w[keep])[:10]
        for t, mass in zip(grid[keep][order], w[keep][order]):
            lines.append(f"    theta = {t:10.4g}   mass {mass:.4f}")
    return "\n".join(lines)


def deconvolution_dict(result: Any) -> dict:
    """Plain JSON-able data: the prior on its grid and the fit's figures."""
    grid, w = prior_weights(result)
    out = {
        "method": "npmle" if hasattr(result, "weights") else "gmodel",
        "loglik": float(result.loglik),
        "converged": bool(result.converged),
        "grid": grid.tolist(),
        "prior": w.tolist(),
        "prior_summary": prior_moments(result),
    }
    if hasattr(result, "kkt_max"):
        out["kkt_max"] = float(result.kkt_max)
    if hasattr(result, "g_se"):
        out["prior_se"] = np.asarray(result.g_se).tolist()
    return out
