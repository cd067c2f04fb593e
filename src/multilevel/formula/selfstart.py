"""Self-starting nonlinear models, as R's ``SSlogis``, ``SSasymp``, ``SSmicmen``,
``SSfol`` and ``SSbiexp``.

Each model is an expression (expanded into the formula by
:mod:`multilevel.formula.expression`) and an initial-value routine like R's
``getInitial``: the parameters that enter nonlinearly are searched on a grid, the
ones that enter linearly are solved by least squares at every grid point (a
partially linear fit, as R's ``plinear`` algorithm), and the best point is then
refined by nonlinear least squares of the population model in
:func:`multilevel.nlmm.start.population_start`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import ModelError


@dataclass(frozen=True)
class SelfStartModel:
    """A self-starting model: argument roles, which are parameters, the mean's text
    (parsed by :mod:`multilevel.formula.expression`) and the start routine
    ``initial(covariates, y) -> {role: value}``."""

    name: str
    args: tuple[str, ...]
    params: tuple[str, ...]
    text: str
    initial: Callable[[dict[str, np.ndarray], np.ndarray], dict[str, float]]


def _best_partial_linear(
    grid: Sequence[tuple[float, ...]], columns: Callable[..., np.ndarray], y: np.ndarray
) -> tuple[tuple[float, ...], np.ndarray]:
    """The grid point whose least-squares fit of the linear coefficients is best.

    ``columns(*point)`` gives the linear columns (n, p) at a point; it is called once,
    on the whole grid (each argument a (G, 1) array, the result (G, n, p)), and the G
    small least-squares problems are solved together by their normal equations.
    """
    pts = np.asarray(grid, dtype=float)
    with np.errstate(all="ignore"):
        A = np.asarray(columns(*(pts[:, j, None] for j in range(pts.shape[1]))), dtype=float)
        A = np.broadcast_to(A, (pts.shape[0], y.size, A.shape[-1]))
        ok = np.all(np.isfinite(A), axis=(1, 2))
        AtA = np.einsum("gnp,gnq->gpq", A, A)
        Aty = np.einsum("gnp,n->gp", A, y)
        p = A.shape[-1]
        det_ok = np.abs(np.linalg.det(AtA)) > 1e-12 * np.prod(np.diagonal(AtA, axis1=1, axis2=2), axis=1)
        ok &= det_ok & np.all(np.isfinite(AtA), axis=(1, 2))
        coef = np.zeros((pts.shape[0], p))
        if ok.any():
            coef[ok] = np.linalg.solve(AtA[ok], Aty[ok][..., None])[..., 0]
        rss = np.sum((y[None, :] - np.einsum("gnp,gp->gn", A, coef)) ** 2, axis=1)
    rss = np.where(ok & np.isfinite(rss), rss, np.inf)
    if not np.isfinite(rss).any():
        raise ModelError("the self-starting model found no finite start; give start= explicitly")
    best = int(np.argmin(rss))
    return tuple(float(v) for v in pts[best]), coef[best]


def _rate_grid(x: np.ndarray, n: int = 41) -> np.ndarray:
    """log rates from 0.05 to 50 per range of x."""
    span = float(np.ptp(x)) or 1.0
    return np.linspace(np.log(0.05 / span), np.log(50.0 / span), n)


def _logis_start(cov: dict[str, np.ndarray], y: np.ndarray) -> dict[str, float]:
    x = cov["input"]
    top = 1.05 * float(np.max(y))
    z = np.clip(y / top, 1e-4, 1 - 1e-4)
    slope, icpt = np.polyfit(x, np.log(z / (1 - z)), 1)
    if slope == 0:
        raise ModelError("SSlogis: the response does not change with the input; give start=")
    return {"Asym": top, "xmid": -icpt / slope, "scal": 1.0 / slope}


def _asymp_start(cov: dict[str, np.ndarray], y: np.ndarray) -> dict[str, float]:
    x = cov["input"]

    def cols(lrc: np.ndarray) -> np.ndarray:
        e = np.exp(-np.exp(lrc) * x)
        return np.stack([1 - e, e], axis=-1)

    (lrc,), (asym, r0) = _best_partial_linear([(v,) for v in _rate_grid(x)], cols, y)
    return {"Asym": asym, "R0": r0, "lrc": lrc}


def _micmen_start(cov: dict[str, np.ndarray], y: np.ndarray) -> dict[str, float]:
    x = cov["input"]
    pos = x[x > 0]
    lo, hi = (float(pos.min()), float(pos.max())) if pos.size else (1e-3, 1.0)
    grid = [(k,) for k in np.exp(np.linspace(np.log(lo / 10), np.log(hi * 10), 61))]
    (K,), (vm,) = _best_partial_linear(grid, lambda k: (x / (k + x))[..., None], y)
    return {"Vm": vm, "K": K}


def _fol_start(cov: dict[str, np.ndarray], y: np.ndarray) -> dict[str, float]:
    t, dose = cov["input"], cov["Dose"]
    rates = _rate_grid(t, 31)
    grid = [(a, b) for a, b in itertools.product(rates, rates) if b > a + 1e-3]

    def cols(lke: np.ndarray, lka: np.ndarray) -> np.ndarray:
        return (dose * (np.exp(-np.exp(lke) * t) - np.exp(-np.exp(lka) * t)))[..., None]

    (lke, lka), (c,) = _best_partial_linear(grid, cols, y)
    if c <= 0:
        raise ModelError("SSfol: no positive start for the clearance; give start=")
    return {"lKe": lke, "lKa": lka, "lCl": lke + lka - float(np.log(c * (np.exp(lka) - np.exp(lke))))}


def _biexp_start(cov: dict[str, np.ndarray], y: np.ndarray) -> dict[str, float]:
    x = cov["input"]
    rates = _rate_grid(x, 31)
    grid = [(a, b) for a, b in itertools.product(rates, rates) if a > b + 1e-3]

    def cols(r1: np.ndarray, r2: np.ndarray) -> np.ndarray:
        return np.stack([np.exp(-np.exp(r1) * x), np.exp(-np.exp(r2) * x)], axis=-1)

    (r1, r2), (a1, a2) = _best_partial_linear(grid, cols, y)
    return {"A1": a1, "lrc1": r1, "A2": a2, "lrc2": r2}


SELF_START: dict[str, SelfStartModel] = {
    m.name: m
    for m in (
        SelfStartModel(
            "SSlogis",
            ("input", "Asym", "xmid", "scal"),
            ("Asym", "xmid", "scal"),
            "Asym / (1 + exp((xmid - input) / scal))",
            _logis_start,
        ),
        SelfStartModel(
            "SSasymp",
            ("input", "Asym", "R0", "lrc"),
            ("Asym", "R0", "lrc"),
            "Asym + (R0 - Asym) * exp(-exp(lrc) * input)",
            _asymp_start,
        ),
        SelfStartModel(
            "SSmicmen", ("input", "Vm", "K"), ("Vm", "K"), "Vm * input / (K + input)", _micmen_start
        ),
        SelfStartModel(
            "SSfol",
            ("Dose", "input", "lKe", "lKa", "lCl"),
            ("lKe", "lKa", "lCl"),
            "Dose * exp(lKe + lKa - lCl) * (exp(-exp(lKe) * input) - exp(-exp(lKa) * input))"
            " / (exp(lKa) - exp(lKe))",
            _fol_start,
        ),
        SelfStartModel(
            "SSbiexp",
            ("input", "A1", "lrc1", "A2", "lrc2"),
            ("A1", "lrc1", "A2", "lrc2"),
            "A1 * exp(-exp(lrc1) * input) + A2 * exp(-exp(lrc2) * input)",
            _biexp_start,
        ),
    )
}
