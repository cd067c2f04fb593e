"""Likelihood-ratio comparison of fitted models: lme4's ``anova(m0, m1, ...)``, and its
parametric-bootstrap test (pbkrtest's ``PBmodcomp``).

The checks and the table are :mod:`multilevel.model.compare`'s; this stage refits
REML fits by ML where the comparison needs it and picks the result class.
"""

from __future__ import annotations

import contextlib
from typing import Any

from ..errors import ModelError
from ..linalg.threads import blas_threads

#: the tests of :func:`anova`: asymptotic chi-square, or also the parametric bootstrap
TESTS = ("Chisq", "PB")


def _refit_ml(fit: Any) -> Any:
    """A REML fit refitted by maximum likelihood from its theta (lme4's ``refitML``)."""
    from ..lmm.fit import fit_objective
    from ..lmm.objective import LmmObjective

    done = fit.objective  # on the fit's own backend and device
    obj = LmmObjective(fit.spec, done.cp, reml=False, backend=done.backend.NAME, device=done.device)
    with blas_threads(obj.layout.m):
        return fit_objective(obj, fit.design, start=fit.theta, result_type=type(fit))


def _comparable(fits: tuple[Any, ...], names: list[str]) -> str:
    """Check that the fits are likelihood fits of one kind; return what their logLik is."""
    from ..glmm.results import GlmmResult
    from ..lmm.results import LmmResult

    for fit, name in zip(fits, names):
        if not isinstance(fit, (LmmResult, GlmmResult)):
            raise ModelError(
                f"anova compares fitted mixed models (results of multilevel.fit); {name} is a "
                f"{type(fit).__name__}"
            )
    lmm = [isinstance(f, LmmResult) for f in fits]
    if any(lmm) and not all(lmm):
        i, j = lmm.index(True), lmm.index(False)
        raise ModelError(
            f"{names[i]} is a linear mixed model and {names[j]} a {fits[j].family.name} GLMM: a "
            "likelihood-ratio test compares models of one response family; fit them alike"
        )
    if all(lmm):
        return "ML"
    # the observed and expected information agree for a canonical link
    kinds = {(f.family.name, f.family.link.name, f.nagq, f.family.canonical or f.laplace) for f in fits}
    if len(kinds) > 1:
        desc = "; ".join(
            f"{n}: {f.family.name}({f.family.link.name}), nagq={f.nagq}, laplace={f.laplace!r}"
            for n, f in zip(names, fits)
        )
        raise ModelError(
            "the GLMMs differ in family, link or likelihood approximation, so their log-likelihoods "
            f"are not comparable ({desc}); fit them with the same family, link, nagq and laplace"
        )
    nagq = fits[0].nagq
    if nagq == 0:
        raise ModelError(
            "nagq=0 fits do not maximize the likelihood, so a likelihood-ratio test of them is not "
            "valid; refit with nagq=1 (Laplace) or more"
        )
    return str(fits[0].approximation)


def _ml_or_reml(
    fits: tuple[Any, ...], names: list[str], refit: bool, criterion: str
) -> tuple[list[Any], tuple[str, ...], str]:
    """The fits to compare (REML ones refitted by ML, or REML fits checked to share their
    fixed effects), the names refitted and what logLik is."""
    from ..model.compare import same_fixed_effects

    reml = [bool(getattr(f, "reml", False)) for f in fits]
    if not any(reml):
        return list(fits), (), criterion
    if refit:
        models = [_refit_ml(f) if r else f for f, r in zip(fits, reml)]
        return models, tuple(n for n, r in zip(names, reml) if r), criterion
    if not all(reml):
        raise ModelError(
            "some fits are REML and some ML: their criteria are not comparable; use refit=True "
            "(the default) to compare them all by ML"
        )
    for f, n in zip(fits[1:], names[1:]):
        if not same_fixed_effects(fits[0], f):
            raise ModelError(
                f"refit=False compares REML criteria, which are comparable only with the same "
                f"fixed effects; {names[0]} and {n} differ in them. Use refit=True (the default) "
                "to compare them by ML"
            )
    return list(fits), (), "REML"


def _check_arguments(fits: tuple[Any, ...], refit: Any, names: Any, boundary: Any, test: Any) -> list[str]:
    """anova's arguments, checked before any work; the row labels."""
    from ..model.compare import BOUNDARY

    if len(fits) < 2:
        raise ModelError(
            f"anova compares two or more nested models (likelihood-ratio tests); got {len(fits)} fit"
            + ("" if len(fits) == 1 else "s")
        )
    if not isinstance(refit, bool):
        raise ModelError(f"refit must be True or False, got {refit!r}")
    if names is None:
        names = [f"m{i + 1}" for i in range(len(fits))]
    names = [str(n) for n in names]
    if len(names) != len(fits) or len(set(names)) != len(names):
        raise ModelError(f"names must give {len(fits)} distinct labels, one per fit; got {names!r}")
    if boundary not in BOUNDARY:
        raise ModelError(f"boundary must be one of {', '.join(map(repr, BOUNDARY))}, got {boundary!r}")
    if test not in TESTS:
        raise ModelError(f"test must be one of {', '.join(map(repr, TESTS))}, got {test!r}")
    return names


def anova(
    *fits: Any,
    refit: bool = True,
    boundary: str = "chisq",
    names: list[str] | None = None,
    test: str = "Chisq",
    n: int = 1000,
    seed: int | None = None,
    workers: int | None = None,
) -> Any:
    """Likelihood-ratio tests of nested mixed models, as lme4's ``anova(m0, m1, ...)``.

    Parameters
    ----------
    *fits:
        Two or more fits (:func:`fit` results) of nested models to the same rows: all
        linear mixed models, or all GLMMs of one family, link and ``nagq``. They are
        ordered by their number of parameters.
    refit:
        Refit REML fits by ML before comparing (the default, as lme4: REML criteria
        of models with different fixed effects are not comparable). ``False``
        compares REML fits as they are, which is valid only with the same fixed
        effects (a test of variance parameters); anything else is an error.
    boundary:
        ``"chisq"`` (default, as lme4): chi-square(Df) p-values. ``"chibar"``: a
        comparison that adds one random effect with the same fixed effects gets the
        50:50 chi-bar-square mixture of chi-square(Df - 1) and chi-square(Df) (its
        variance is on the boundary under the null; Self & Liang 1987, Stram & Lee
        1994); the printout says which each row used.
    names:
        Row labels, one per fit in the order given (default ``m1``, ``m2``, ...).
    test:
        ``"Chisq"`` (default): the asymptotic p-values only. ``"PB"``: also the
        parametric-bootstrap likelihood-ratio test (pbkrtest's ``PBmodcomp``) in
        column ``Pr(PB)``: ``n`` responses simulated from each row's smaller model
        (as compared: ML refits unless ``refit=False``), both models refitted,
        ``p = (1 + #{simulated >= observed}) / (1 + n used)``; ``seed`` seeds them,
        ``workers`` threads refit them (None: every CPU).

    Returns
    -------
    :class:`multilevel.present.anova.Anova`
        ``.table`` (npar, AIC, BIC, logLik, deviance, Chisq, Df, Pr(>Chisq)); ``str()``
        prints it as lme4 does.

    Examples
    --------
    >>> import multilevel
    >>> d = multilevel.load_dataset("sleepstudy")
    >>> m0 = multilevel.fit("Reaction ~ Days + (1 | Subject)", d)
    >>> m1 = multilevel.fit("Reaction ~ Days + (Days | Subject)", d)
    >>> a = multilevel.anova(m0, m1, refit=False, boundary="chibar")
    >>> int(a.table.loc["m2", "Df"])
    2
    """
    from ..model.compare import check_models, compare
    from ..present.anova import Anova

    names = _check_arguments(fits, refit, names, boundary, test)
    criterion = _comparable(fits, names)
    check_models(list(fits), names)  # before any refit: the same rows, and nested
    models, refitted, criterion = _ml_or_reml(fits, names, refit, criterion)
    pb = n if test == "PB" else None
    # the bootstrap's refits run on worker threads: one BLAS thread each
    with blas_threads(1) if pb else contextlib.nullcontext():
        return compare(
            models,
            names,
            criterion=criterion,
            refitted=refitted,
            boundary=boundary,
            pb=pb,
            seed=seed,
            workers=workers,
            result_type=Anova,
        )
