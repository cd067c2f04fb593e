"""Likelihood-ratio comparison of nested mixed models: lme4's ``anova(m0, m1, ...)``.

The table has, per model, ``npar``, ``AIC``, ``BIC``, ``logLik`` and ``deviance``
(-2 logLik), and per model after the first the likelihood-ratio statistic
``Chisq = 2 * max(0, logLik - previous logLik)``, its ``Df`` (the difference in
parameters) and ``Pr(>Chisq)``, models ordered by their number of parameters
as lme4 orders them. Fits are checked first: the same rows (number of
observations, response and prior weights), the same response family, link and
approximation, and nesting: the smaller model's fixed-effect columns (and offset)
lie in the span of the larger's, and each of its random-effect terms is inside
one of the larger model's terms on the same grouping factor.

A test that adds one random effect puts its variance on the boundary of the
parameter space under the null, where the likelihood-ratio statistic is not
chi-square: with ``boundary="chibar"`` such a comparison (same fixed effects, one
more SD, with its correlations) gets the 50:50 mixture of chi-square(Df - 1)
and chi-square(Df) (Self & Liang 1987; Stram & Lee 1994), which halves the
p-value of a single variance.

This module works on any fit with ``loglik``, ``n_params``, ``spec`` and
``design``; the refit of REML fits by ML and the checks of the fit classes are
:func:`multilevel.anova`'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from ..errors import ModelError

__all__ = ["BOUNDARY", "Comparison", "check_models", "compare", "same_fixed_effects"]

BOUNDARY = ("chisq", "chibar")
#: relative residual below which a column lies in the span of another design
SPAN_TOL = 1e-8

CHIBAR = "chi-bar-square: 50:50 mixture of chi2(Df - 1) and chi2(Df)"
CHISQ = "chi-square(Df)"


@dataclass(frozen=True)
class Comparison:
    """The likelihood-ratio table of nested models (lme4's ``anova``).

    ``table``: one row per model (ordered by ``npar``); ``formulas``: each row's
    formula; ``refitted``: the models refitted by ML for the comparison;
    ``criterion``: what ``logLik`` is (``"ML"``, ``"REML"``, ``"Laplace"``,
    ``"adaptive quadrature (nagq = 25)"``); ``tests``: the reference distribution of
    each row's p-value (None for the first).
    """

    table: pd.DataFrame
    formulas: tuple[str, ...]
    refitted: tuple[str, ...]
    criterion: str
    tests: tuple[str | None, ...]
    boundary: str
    pb: tuple[Any, ...] = ()  # per row, the parametric-bootstrap test (PBTest) or None


def _describe(name: str, fit: Any) -> str:
    return f"{name} ({fit.spec.formula})"


def _check_same_remote_rows(first: Any, fit: Any, name0: str, name: str) -> None:
    """Fits from partitioned data keep no rows: the same source, response and weights column."""
    a, b = first.spec, fit.spec
    remote = getattr(first.design, "remote", False) and getattr(fit.design, "remote", False)
    if not remote or (a.data_name, a.response, a.weights) != (b.data_name, b.response, b.weights):
        raise ModelError(
            f"{name0} and {name} cannot be shown to fit the same rows: a fit from partitioned data "
            "(Dask or Parquet) keeps no rows, so both must come from the same source with the same "
            "response and weights= column"
        )


def check_same_rows(fits: list[Any], names: list[str]) -> None:
    """The models were fitted to the same rows: same number, same response values and
    the same prior weights (different missing-value patterns are the usual cause).

    >>> import multilevel
    >>> d = multilevel.load_dataset("Dyestuff")
    >>> check_same_rows([multilevel.fit("Yield ~ 1 + (1 | Batch)", d)] * 2, ["m1", "m2"])
    """
    first, n0 = fits[0], fits[0].design.n
    for fit, name in zip(fits[1:], names[1:]):
        d, d0 = fit.design, first.design
        if d.n != n0:
            raise ModelError(
                f"the models were not fitted to the same rows: {names[0]} has {n0} observations and "
                f"{name} {d.n} (rows with missing values in a variable only one model uses are "
                "dropped from that model alone); fit every model to the same complete rows"
            )
        if getattr(d, "remote", False) or getattr(d0, "remote", False):
            _check_same_remote_rows(first, fit, names[0], name)
            continue
        if not np.array_equal(np.asarray(d.y), np.asarray(d0.y)):
            raise ModelError(
                f"{names[0]} and {name} have different responses ({first.spec.response!r} and "
                f"{fit.spec.response!r}, or the same one on different rows): a likelihood-ratio test "
                "compares models of the same observations"
            )
        w, w0 = d.weights, d0.weights
        if (w is None) != (w0 is None) or (w is not None and not np.array_equal(w, w0)):
            raise ModelError(
                f"{names[0]} and {name} have different prior weights: their likelihoods are not "
                "comparable; give both the same weights"
            )


def _in_span(A: np.ndarray, B: np.ndarray) -> bool:
    """Every column of A lies in the column span of B."""
    if A.shape[1] == 0 or not np.any(A):
        return True
    if B.shape[1] == 0:
        return False
    coef, *_ = np.linalg.lstsq(B, A, rcond=None)
    return float(np.linalg.norm(A - B @ coef)) <= SPAN_TOL * float(np.linalg.norm(A))


def _offset(fit: Any) -> np.ndarray:
    o = fit.design.offset
    return np.zeros(fit.design.n) if o is None else np.asarray(o, dtype=float)


def fixed_nested(small: Any, big: Any) -> bool:
    """The smaller model's mean space ``{X0 b + o0}`` lies in the larger's ``{X1 b + o1}``.

    Fits from partitioned data keep no rows: there the columns are compared by name."""
    if getattr(small.design, "remote", False) or getattr(big.design, "remote", False):
        a, b = small.spec, big.spec
        same_offset = (a.offset, a.parsed.offsets) == (b.offset, b.parsed.offsets)
        return same_offset and set(a.fixed_names) <= set(b.fixed_names)
    X1 = np.asarray(big.design.X, dtype=float)
    X0 = np.asarray(small.design.X, dtype=float)
    return _in_span(X0, X1) and _in_span((_offset(small) - _offset(big))[:, None], X1)


def same_fixed_effects(a: Any, b: Any) -> bool:
    """The same fixed-effect column space and offset (REML criteria are then comparable).

    >>> import multilevel
    >>> d = multilevel.load_dataset("sleepstudy")
    >>> a = multilevel.fit("Reaction ~ Days + (1 | Subject)", d)
    >>> b = multilevel.fit("Reaction ~ Days + (Days | Subject)", d)
    >>> same_fixed_effects(a, b)
    True
    """
    return fixed_nested(a, b) and fixed_nested(b, a)


def _terms(fit: Any) -> dict[str, tuple[tuple[str, tuple[str, ...]], ...]]:
    """Grouping factor -> its levels' key and its terms' columns."""
    return {
        g.name: (("levels", tuple(g.levels)), *((t.expr, t.columns) for t in g.terms))
        for g in fit.spec.groupings
    }


def random_nested(small: Any, big: Any) -> str | None:
    """None if every random-effect term of ``small`` is inside a term of ``big`` on the same
    grouping factor (a correlated term inside one correlated term), else why not."""
    tb = _terms(big)
    for g, (levels, *terms) in _terms(small).items():
        if g not in tb or tb[g][0] != levels:
            return f"its grouping factor {g!r} is not one of the larger model's"
        for expr, cols in terms:
            if not any(set(cols) <= set(c) for _, c in tb[g][1:]):
                return f"its term ({expr} | {g}) is not inside one term on {g!r} of the larger model"
    return None


def check_nested(small: Any, big: Any, names: tuple[str, str]) -> None:
    """``small`` is nested in ``big`` (fixed and random parts), else a ModelError saying why."""
    a, b = names
    if small.n_params == big.n_params:
        raise ModelError(
            f"{_describe(a, small)} and {_describe(b, big)} have the same number of parameters "
            f"({small.n_params}), so neither is nested in the other; a likelihood-ratio test needs "
            "a smaller model inside a larger one (compare non-nested models by AIC or BIC)"
        )
    if not fixed_nested(small, big):
        raise ModelError(
            f"{_describe(a, small)} is not nested in {_describe(b, big)}: its fixed effects (or offset) "
            "are not in the span of the larger model's; a likelihood-ratio test needs nested models "
            "(compare non-nested ones by AIC or BIC)"
        )
    why = random_nested(small, big)
    if why is not None:
        raise ModelError(
            f"{_describe(a, small)} is not nested in {_describe(b, big)}: {why}; a likelihood-ratio "
            "test needs nested models (compare non-nested ones by AIC or BIC)"
        )


def check_models(fits: list[Any], names: list[str]) -> tuple[list[Any], list[str]]:
    """The fits ordered by their number of parameters (stably, as R's ``order``), checked
    for the same rows and for each being nested in the next.

    >>> import multilevel
    >>> d = multilevel.load_dataset("sleepstudy")
    >>> a = multilevel.fit("Reaction ~ Days + (1 | Subject)", d)
    >>> b = multilevel.fit("Reaction ~ Days + (Days | Subject)", d)
    >>> check_models([b, a], ["big", "small"])[1]
    ['small', 'big']
    """
    check_same_rows(fits, names)
    order = sorted(range(len(fits)), key=lambda i: fits[i].n_params)
    fits, names = [fits[i] for i in order], [names[i] for i in order]
    for i in range(1, len(fits)):
        check_nested(fits[i - 1], fits[i], (names[i - 1], names[i]))
    return fits, names


def _n_sd(fit: Any) -> int:
    tm = fit.spec.theta_map
    return int(np.sum(tm.row == tm.col))


def boundary_test(small: Any, big: Any) -> bool:
    """The larger model adds one random effect (one SD and its correlations) and nothing
    else: the chi-bar-square case of Stram & Lee (1994)."""
    return same_fixed_effects(small, big) and _n_sd(big) == _n_sd(small) + 1


def _pvalue(chisq: float, df: int, chibar: bool) -> float:
    if df <= 0:
        return math.nan
    p = float(special.chdtrc(df, chisq))
    if not chibar:
        return p
    below = 1.0 if df == 1 and chisq <= 0 else (0.0 if df == 1 else float(special.chdtrc(df - 1, chisq)))
    return 0.5 * below + 0.5 * p


def compare(
    fits: list[Any],
    names: list[str],
    *,
    criterion: str,
    refitted: tuple[str, ...] = (),
    boundary: str = "chisq",
    pb: int | None = None,
    seed: int | None = None,
    workers: int | None = 1,
    result_type: type[Comparison] = Comparison,
) -> Comparison:
    """The likelihood-ratio table of ``fits`` (checked for the same rows and nesting), as
    ``result_type``. :func:`multilevel.anova` refits REML fits first and prints it.
    ``pb``: also a parametric-bootstrap p-value from that many simulations per row
    (:mod:`multilevel.model.pbtest`), drawn from ``seed``.

    >>> import multilevel
    >>> d = multilevel.load_dataset("sleepstudy")
    >>> fits = [multilevel.fit(f, d, reml=False) for f in ("Reaction ~ 1 + (Days | Subject)",
    ...                                                    "Reaction ~ Days + (Days | Subject)")]
    >>> round(float(compare(fits, ["m1", "m2"], criterion="ML").table["Chisq"].iloc[1]), 3)
    23.537
    """
    if boundary not in BOUNDARY:
        raise ModelError(f"boundary must be one of {', '.join(map(repr, BOUNDARY))}, got {boundary!r}")
    fits, names = check_models(fits, names)
    n = fits[0].design.n
    ll = np.array([float(f.loglik) for f in fits])
    npar = np.array([int(f.n_params) for f in fits])
    chisq = np.r_[np.nan, 2.0 * np.maximum(0.0, np.diff(ll))]
    df = np.r_[np.nan, np.diff(npar)]
    tests: list[str | None] = [None]
    p = [math.nan]
    for i in range(1, len(fits)):
        chibar = boundary == "chibar" and boundary_test(fits[i - 1], fits[i])
        tests.append(CHIBAR if chibar else CHISQ)
        p.append(_pvalue(float(chisq[i]), int(df[i]), chibar))
    table = pd.DataFrame(
        {
            "npar": npar,
            "AIC": -2.0 * ll + 2.0 * npar,
            "BIC": -2.0 * ll + math.log(n) * npar,
            "logLik": ll,
            "deviance": -2.0 * ll,
            "Chisq": chisq,
            "Df": pd.array([pd.NA, *df[1:].astype(int)], dtype="Int64"),
            "Pr(>Chisq)": p,
        },
        index=pd.Index(names, name="model"),
    )
    pbs: tuple[Any, ...] = ()
    if pb is not None:
        pbs = _pb_tests(fits, chisq, pb, seed, workers)
        table["Pr(PB)"] = [math.nan if t is None else t.p for t in pbs]
    return result_type(
        table=table,
        formulas=tuple(f.spec.formula for f in fits),
        refitted=tuple(r for r in names if r in refitted),
        criterion=criterion,
        tests=tuple(tests),
        boundary=boundary,
        pb=pbs,
    )


def _pb_tests(
    fits: list[Any], chisq: np.ndarray, n: int, seed: int | None, workers: int | None
) -> tuple[Any, ...]:
    """The bootstrap test of every row against the row before it."""
    from .pbtest import check_nsim, pb_test
    from .replicates import check_workers

    n, threads = check_nsim(n), check_workers(workers)
    if seed is None:
        seed = int(np.random.SeedSequence().generate_state(1)[0])
    out: list[Any] = [None]
    for i in range(1, len(fits)):
        out.append(pb_test(fits[i - 1], fits[i], float(chisq[i]), n, seed + i - 1, threads))
    return tuple(out)
