"""Public entry points: :func:`fit`, :func:`sample` and :class:`Model`.

They only chain the stages, as lme4's ``lmer`` chains ``lFormula``,
``mkLmerDevfun``, ``optimizeLmer`` and ``mkMerMod``:

    formula + data --model.design--> ModelSpec + Design --linalg.crossprod--> CrossProducts
        LMM:   lmm.objective (theta -> criterion) --lmm.fit--> LmmFit
        GLMM:  glmm.driver (PIRLS, Laplace / quadrature) --> GlmmFit
        Bayes: bayes.sampler (NUTS on the same spec and cross-products) --> Posterior

The result classes come from :mod:`multilevel.present` (the methods' result
records plus their rendering), passed down to the methods as the type to build.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from ..control import FitControl, SampleControl
from ..errors import ModelError
from ..linalg.crossprod import CrossProducts, compute_crossprods
from ..linalg.threads import blas_threads
from ..model.design import Design, build_model
from ..model.spec import ModelSpec

__all__ = ["Model", "fit", "gee", "is_linear_model", "sample"]


def _control(control: FitControl | None, optimizer: str | None) -> FitControl:
    if control is not None and not isinstance(control, FitControl):
        raise ModelError(f"control must be a multilevel.control.FitControl, got {type(control).__name__}")
    if optimizer is None:
        return control or FitControl()
    if control is not None and control.optimizer != optimizer:
        raise ModelError(
            f"optimizer={optimizer!r} contradicts control.optimizer={control.optimizer!r}; give one of them"
        )
    return FitControl(optimizer=optimizer) if control is None else control


def is_linear_model(family: Any = "gaussian", link: Any = None) -> bool:
    """Whether ``family`` and ``link`` give a linear mixed model (REML / ML from cross-products)."""
    from ..family import get_family

    return get_family(family, link).is_lmm


class Model:
    """A mixed model on data, before fitting: spec, design and cross-products.

    Examples
    --------
    >>> from multilevel.datasets import load_dataset
    >>> m = Model("Reaction ~ Days + (Days | Subject)", load_dataset("sleepstudy"))
    >>> round(float(m.fit().fixef["Days"]), 4)
    10.4673
    """

    def __init__(
        self,
        formula: str,
        data: Any,
        *,
        family: Any = "gaussian",
        link: Any = None,
        weights: Any = None,
        offset: Any = None,
        na_action: str = "omit",
    ) -> None:
        from ..family import get_family

        self.formula = formula
        self.family = get_family(family, link)
        self.is_lmm = self.family.is_lmm
        self.spec: ModelSpec
        self.design: Design
        self.spec, self.design = build_model(
            formula, data, family=self.family, weights=weights, offset=offset, na_action=na_action
        )

    def graph(self) -> Any:
        """The model's directed graphical model (:class:`multilevel.present.graph.ModelGraph`)."""
        from ..present.graph import model_graph

        return model_graph(self.spec, self.family)

    @cached_property
    def crossprods(self) -> CrossProducts:
        """Cross-products of ``[Z X y]``, computed once and shared by all fits."""
        return compute_crossprods(self.design, [g.n_levels for g in self.spec.groupings])

    def objective(self, reml: bool = True) -> Any:
        """The profiled criterion ``theta -> REML criterion / deviance``, unfitted."""
        from ..lmm.objective import LmmObjective

        if not isinstance(reml, bool):
            raise ModelError(f"reml must be True or False, got {reml!r}")
        return LmmObjective(self.spec, self.crossprods, reml=reml)

    def fit(
        self,
        *,
        reml: bool | None = None,
        nagq: int | None = None,
        start: np.ndarray | None = None,
        optimizer: str | None = None,
        control: FitControl | None = None,
        progress: bool = False,
        laplace: str | None = None,
    ) -> Any:
        """Fit: REML (default) or ML for linear models; Laplace (``nagq=1``, default) or
        adaptive Gauss-Hermite quadrature (``nagq > 1``) for generalized ones, with
        ``laplace="observed"`` (default) or ``"expected"`` information (see :func:`fit`).

        Arguments that do not apply to the model (``reml`` or ``optimizer`` for a
        GLMM, ``nagq`` or ``laplace`` for a linear model) are errors, not silently ignored.
        """
        ctl = _control(control, optimizer)
        if reml is not None and not isinstance(reml, bool):
            raise ModelError(f"reml must be True or False, got {reml!r}")
        if self.is_lmm:
            if nagq is not None and nagq != 1:
                raise ModelError(
                    f"nagq={nagq!r} applies to generalized models; a linear mixed model's likelihood "
                    "is exact (choose REML or ML with reml=)"
                )
            if laplace is not None:
                raise ModelError(
                    f"laplace={laplace!r} applies to generalized models; a linear mixed model's "
                    "likelihood is exact, with no Laplace approximation: drop laplace"
                )
            return self._fit_lmm(True if reml is None else reml, start, ctl, progress)
        if progress:
            raise ModelError("progress applies to linear mixed models for now: drop it for a GLMM")
        laplace = _laplace(laplace)
        if reml is not None:
            raise ModelError(
                f"reml applies to linear mixed models; a {self.family.name} GLMM is fitted by maximum "
                "likelihood (Laplace or quadrature, nagq=): drop reml"
            )
        if optimizer is not None or ctl.optimizer != FitControl().optimizer:
            raise ModelError(
                "optimizer applies to linear mixed models; a GLMM runs BOBYQA and then the gradient "
                "path itself: drop optimizer"
            )
        if nagq is None:
            nagq = 1
        if isinstance(nagq, bool) or not isinstance(nagq, (int, np.integer)):
            raise ModelError(f"nagq must be an integer (0, 1 or a number of quadrature nodes), got {nagq!r}")
        return self._fit_glmm(int(nagq), start, ctl, laplace)

    def _fit_lmm(self, reml: bool, start: Any, control: FitControl, progress: bool = False) -> Any:
        from ..lmm.fit import fit_objective
        from ..present.lmm_fit import LmmFit
        from ..present.progress import Progress

        obj = self.objective(reml)
        report = Progress(progress)
        try:
            with blas_threads(obj.layout.m, tiny_as_is=True):
                return fit_objective(
                    obj,
                    self.design,
                    start=start,
                    control=control,
                    result_type=LmmFit,
                    progress=report.evaluation if progress else None,
                )
        finally:
            report.close()

    def _fit_glmm(self, nagq: int, start: Any, control: FitControl, laplace: str = "observed") -> Any:
        from ..glmm.driver import fit_glmm_result
        from ..present.glmm_fit import GlmmFit

        with blas_threads(self.crossprods.layout.m):
            return fit_glmm_result(
                self.spec,
                self.design,
                self.family,
                nagq=nagq,
                start=start,
                control=control,
                laplace=laplace,
                result_type=GlmmFit,
            )

    def sample(
        self,
        *,
        priors: dict[str, Any] | None = None,
        control: SampleControl | None = None,
        **settings: Any,
    ) -> Any:
        """Draw from the posterior with NumPyro's NUTS (see :func:`multilevel.sample`)."""
        from ..bayes.sampler import sample_model
        from ..present.posterior import Posterior

        return sample_model(
            self, priors=priors, control=_sample_control(control, settings), result_type=Posterior
        )


def _laplace(laplace: Any) -> str:
    """The ``laplace=`` of a GLMM fit, checked (None: the default, ``"observed"``)."""
    from ..glmm.pirls import LAPLACE_METHODS

    if laplace is None:
        return LAPLACE_METHODS[0]
    if not isinstance(laplace, str) or laplace not in LAPLACE_METHODS:
        raise ModelError(
            f"laplace must be 'observed' (the observed information, as glmmTMB; the default) or "
            f"'expected' (the expected information, as lme4), got {laplace!r}"
        )
    return laplace


def _sample_control(control: SampleControl | None, settings: dict[str, Any]) -> SampleControl:
    if control is not None and not isinstance(control, SampleControl):
        raise ModelError(f"control must be a multilevel.control.SampleControl, got {type(control).__name__}")
    if control is not None and settings:
        raise ModelError(
            f"give the sampler's settings in control or as keywords, not both: {sorted(settings)}"
        )
    if control is not None:
        return control
    known = SampleControl.__dataclass_fields__
    unknown = sorted(set(settings) - set(known))
    if unknown:
        raise ModelError(f"unknown sampler settings {unknown}; valid: {sorted(known)}")
    return SampleControl(**settings)


def fit(
    formula: str,
    data: Any,
    *,
    family: Any = "gaussian",
    link: Any = None,
    nagq: int | None = None,
    reml: bool | None = None,
    weights: Any = None,
    offset: Any = None,
    na_action: str = "omit",
    start: np.ndarray | None = None,
    optimizer: str | None = None,
    control: FitControl | None = None,
    progress: bool = False,
    laplace: str | None = None,
) -> Any:
    """Fit a linear or generalized linear mixed model given an lme4-style formula.

    Parameters
    ----------
    formula:
        ``"y ~ x + (1 + x | g)"``; see :func:`multilevel.formula.parse_formula`.
    data:
        pandas / polars DataFrame, pyarrow Table or dict of arrays; for LMMs also a Dask
        DataFrame or Parquet files (path, glob or list): cross-products on the workers of
        the active ``dask.distributed`` client (or a ``LocalCluster`` for the call), no rows kept.
    family, link:
        ``"gaussian"`` (a linear mixed model, fitted by REML or ML), or ``"binomial"``,
        ``"poisson"``, ``"Gamma"``, ``"inverse_gaussian"``, ``"negative_binomial"``
        (and ``"gaussian"`` with a non-identity link), fitted by Laplace or quadrature.
    nagq:
        GLMMs: 1 (default) for the Laplace approximation, up to 25 for adaptive
        Gauss-Hermite quadrature (one grouping factor), 0 for the fast PIRLS-only fit.
    reml:
        LMMs: REML (default, ``True``) or maximum likelihood (``False``).
    weights, offset:
        Column names or arrays of prior weights and a known offset.
    na_action:
        ``"omit"`` drops incomplete rows with a warning that counts them;
        ``"raise"`` makes them an error.
    optimizer:
        LMMs: ``"auto"`` (default: BFGS on the analytic gradient for one grouping
        block, BOBYQA otherwise), ``"bobyqa"`` or ``"lbfgsb"`` (analytic gradient);
        the same as ``control=FitControl(optimizer=...)``.
    control:
        A :class:`multilevel.control.FitControl`.
    progress:
        LMMs: show on stderr the rows read (partitioned data), evaluations and criterion.
    laplace:
        GLMMs: the curvature of the Laplace approximation (and the scale of adaptive
        quadrature). ``"observed"`` (default): the observed Hessian of the joint log
        density at the conditional modes, as glmmTMB, the closer approximation for
        non-canonical links (Gamma or negative binomial with a log link, probit, ...);
        ``"expected"``: the expected (Fisher) information, as lme4's ``glmer``. The two
        agree for canonical links (binomial logit, Poisson log). For a family with a
        dispersion (Gamma, inverse Gaussian, Gaussian with a non-identity link) and
        ``nagq`` 0 or 1, ``"expected"`` is lme4's ``glmer`` criterion, not a Laplace
        approximation of the likelihood with the dispersion estimated: modes and
        weights at dispersion 1, ``log|L|^2 + |u|^2`` plus the family's R ``aic``
        with the dispersion set to deviance / n; the log-likelihood is lme4's
        ``logLik`` (-criterion / 2), the dispersion lme4's ``sigma()^2``
        ((Pearson sum + |u|^2) / n); the random-effect SDs are theta (lme4's
        ``VarCorr`` prints theta x sigma).

    Examples
    --------
    >>> from multilevel.datasets import load_dataset
    >>> m = fit("Reaction ~ Days + (Days | Subject)", load_dataset("sleepstudy"))
    >>> round(m.reml_criterion, 3)
    1743.628

    Why this is long: the docstring documents every argument of the main entry point;
    the code is a dispatch of a dozen lines (partitioned data or a model in memory).
    """
    from .distributed import is_partitioned

    if not isinstance(progress, bool):
        raise ModelError(f"progress must be True or False, got {progress!r}")
    if is_partitioned(data):
        if laplace is not None:
            raise ModelError(
                "laplace= applies to generalized models, and partitioned data fit linear mixed models "
                "only: drop laplace"
            )
        return _fit_partitioned(
            formula,
            data,
            family,
            link,
            nagq,
            reml,
            weights,
            offset,
            na_action,
            start,
            _control(control, optimizer),
            progress,
        )
    model = Model(
        formula, data, family=family, link=link, weights=weights, offset=offset, na_action=na_action
    )
    return model.fit(
        reml=reml,
        nagq=nagq,
        start=start,
        optimizer=optimizer,
        control=control,
        progress=progress,
        laplace=laplace,
    )


def _fit_partitioned(
    formula: str,
    data: Any,
    family: Any,
    link: Any,
    nagq: Any,
    reml: Any,
    weights: Any,
    offset: Any,
    na_action: str,
    start: Any,
    control: FitControl,
    progress: bool,
) -> Any:
    from ..family import get_family
    from ..present.lmm_fit import LmmFit
    from .distributed import fit_partitioned

    fam = get_family(family, link)
    if not fam.is_lmm or nagq not in (None, 1):
        raise ModelError(
            "partitioned data (Dask or Parquet) fit linear mixed models only for now; for a "
            f"{fam.name} GLMM (or nagq=) load the rows into memory (ddf.compute()) and call fit"
        )
    return fit_partitioned(
        formula,
        data,
        reml=reml,
        weights=weights,
        offset=offset,
        na_action=na_action,
        start=start,
        control=control,
        progress=progress,
        result_type=LmmFit,
    )


def sample(
    formula: str,
    data: Any,
    *,
    family: Any = "gaussian",
    link: Any = None,
    priors: dict[str, Any] | None = None,
    weights: Any = None,
    offset: Any = None,
    na_action: str = "omit",
    control: SampleControl | None = None,
    params: dict[str, str] | None = None,
    start: dict[str, Any] | None = None,
    **settings: Any,
) -> Any:
    """Draw from the posterior of a mixed model with NumPyro's NUTS.

    Parameters
    ----------
    formula, data, family, link, weights, offset, na_action:
        As for :func:`fit`; ``y | se(s) ~ ...`` gives known residual SDs.
    priors:
        ``{"b": "normal(0, 1)", "sd_county": numpyro.distributions.HalfNormal(1.0), ...}``:
        keys are classes (``Intercept``, ``b``, ``sd``, ``cor``, ``sigma``, ``shape``),
        grouping factors (``sd_county``, ``cor_county``) or parameters
        (``sd_county__basement``, ``basement``); values are Stan-style strings or
        NumPyro distributions. See :mod:`multilevel.bayes.priors` for the defaults.
    params, start:
        A nonlinear model (see :func:`multilevel.nlfit`): the formula's right-hand side
        is the mean as an expression of parameters, ``params`` gives each parameter's
        mixed-model formula (brms' ``nl = TRUE``), ``start`` optional starting values
        for the likelihood fit the chains start from. The coefficients need priors, per
        parameter (``{"b_Asym": "normal(200, 50)"}``) or per coefficient
        (``Asym_Intercept``); SDs (``sd_Tree``, ``sd_Asym``, ``sd``) and ``sigma`` have
        brms's defaults. Gaussian responses. Returns a
        :class:`multilevel.present.nlmm_posterior.NlPosterior`.
    control, **settings:
        A :class:`multilevel.control.SampleControl`, or its fields as keywords:
        ``chains=4, draws=1000, warmup=1000, seed=0, progress=True,
        target_accept=0.8, max_tree_depth=10``.

    Returns
    -------
    :class:`multilevel.present.posterior.Posterior`

    Examples
    --------
    >>> import multilevel
    >>> post = multilevel.sample("y | se(sigma) ~ 1 + (1 | school)",
    ...                          multilevel.load_dataset("eight_schools"),
    ...                          chains=1, draws=200, warmup=200, progress=False)  # doctest: +SKIP
    """
    if params is not None or _is_self_start(formula):
        return _sample_nonlinear(formula, data, params, start, family, link, weights, offset, locals())
    m = Model(formula, data, family=family, link=link, weights=weights, offset=offset, na_action=na_action)
    return m.sample(priors=priors, control=control, **settings)


def _is_self_start(formula: Any) -> bool:
    import re

    return isinstance(formula, str) and re.search(r"~\s*SS[a-z]+\s*\(", formula) is not None


def _sample_nonlinear(
    formula: str,
    data: Any,
    params: Any,
    start: Any,
    family: Any,
    link: Any,
    weights: Any,
    offset: Any,
    args: dict[str, Any],
) -> Any:
    from .nonlinear import sample_nonlinear

    fam = family if isinstance(family, str) else getattr(family, "name", family)
    if fam != "gaussian" or link not in (None, "identity"):
        raise ModelError(
            f"nonlinear models are sampled with a Gaussian response (identity link); got family={fam!r}"
            + (f", link={link!r}" if link is not None else "")
        )
    if weights is not None or offset is not None:
        raise ModelError(
            "weights= and offset= are not taken by nonlinear models; put them in the mean expression"
        )
    ctl = _sample_control(args["control"], args["settings"])
    return sample_nonlinear(
        formula, data, params, start=start, priors=args["priors"], control=ctl, na_action=args["na_action"]
    )


def gee(formula: str, data: Any, groups: str, **options: Any) -> Any:
    """Generalized estimating equations for clustered data, with small-sample SEs.

    ``options`` are those of :func:`multilevel.marginal.model.gee` (``family``,
    ``link``, ``corstr``, ``time``, ``se``, ``weights``, ``offset``,
    ``na_action``); the result is a :class:`multilevel.present.gee.GeeFit`.

    Examples
    --------
    >>> import multilevel
    >>> m = multilevel.gee("y ~ arm + x", multilevel.load_dataset("crt10"), groups="cluster",
    ...                    family="binomial")
    >>> m.se_method
    'kc'
    """
    from ..marginal.model import gee as fit_gee
    from ..present.gee import GeeFit

    if "result_type" in options:
        raise ModelError(
            "result_type is chosen by multilevel.gee; call multilevel.marginal.model.gee for another"
        )
    return fit_gee(formula, data, groups, result_type=GeeFit, **options)
