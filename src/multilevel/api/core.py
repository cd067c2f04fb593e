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

__all__ = ["Model", "fit", "gee", "is_linear_model"]


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
        mi: dict[str, str] | None = None,
    ) -> None:
        from ..family import get_family
        from ..model.latent import finish, prepare

        self.formula = formula
        self.family = get_family(family, link)
        self.is_lmm = self.family.is_lmm
        self.spec: ModelSpec
        self.design: Design
        # me() / mi() terms: the design on their columns as observed (mi's holes filled),
        # the latent parts beside it (multilevel.model.latent)
        setup = prepare(formula, data, mi) if isinstance(formula, str) else None
        self.spec, self.design = build_model(
            formula if setup is None else setup.rewritten,
            data if setup is None else setup.filled,
            family=self.family,
            weights=weights,
            offset=offset,
            na_action=na_action,
            also_complete=() if setup is None else setup.also_complete,
        )
        self.latent_info: tuple[Any, ...] = ()
        if setup is not None:
            self.latent_info, self.latent_data, self.latent_rows = finish(setup, self.spec, self.design)

    def graph(self) -> Any:
        """The model's directed graphical model (:class:`multilevel.present.graph.ModelGraph`)."""
        from ..present.graph import model_graph

        return model_graph(self.spec, self.family)

    @cached_property
    def crossprods(self) -> CrossProducts:
        """Cross-products of ``[Z X y]``, computed once and shared by all fits."""
        return compute_crossprods(self.design, [g.n_levels for g in self.spec.groupings])

    def objective(self, reml: bool = True, control: FitControl | None = None) -> Any:
        """The profiled criterion ``theta -> REML criterion / deviance``, unfitted, on the
        backend and device of ``control``."""
        from ..lmm.objective import LmmObjective

        if not isinstance(reml, bool):
            raise ModelError(f"reml must be True or False, got {reml!r}")
        ctl = FitControl() if control is None else control
        return LmmObjective(
            self.spec, self.crossprods, reml=reml, backend=ctl.linalg_backend, device=ctl.device
        )

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
        if self.latent_info:
            return self._fit_latent(reml, nagq, start, laplace)
        return self.naive_fit(
            reml=reml, nagq=nagq, start=start, control=ctl, progress=progress, laplace=laplace
        )

    def naive_fit(
        self,
        *,
        reml: bool | None = None,
        nagq: int | None = None,
        start: np.ndarray | None = None,
        control: FitControl | None = None,
        progress: bool = False,
        laplace: str | None = None,
    ) -> Any:
        """:meth:`fit` on the design as materialized: a ``me()`` column as observed (the
        fit whose slope ``me()`` corrects for attenuation), a ``mi()`` column with its
        missing values at the observed mean (only a start for the sampler)."""
        ctl = FitControl() if control is None else control
        from .options import glmm_options, lmm_options

        if self.is_lmm:
            lmm_options(nagq, laplace)
            return self._fit_lmm(True if reml is None else reml, start, ctl, progress)
        if progress:
            raise ModelError(
                "progress applies to linear mixed models and partitioned data for now: drop it for a "
                "GLMM in memory"
            )
        nagq, laplace = glmm_options(self.family, reml, ctl, nagq, laplace)
        return self._fit_glmm(nagq, start, ctl, laplace)

    def _fit_latent(self, reml: bool | None, nagq: Any, start: Any, laplace: Any) -> Any:
        from ..lmm.measurement import fit_measurement
        from ..present.measurement_fit import MeasurementFit

        kinds = {li.kind for li in self.latent_info}
        if "mi" in kinds:
            raise ModelError(
                "mi() terms are modelled by the sampler: use multilevel.sample(...) (a likelihood fit "
                "would drop the rows with missing values; do that explicitly if wanted)"
            )
        if not self.is_lmm or self.design.weights is not None or self.spec.parsed.se is not None:
            raise ModelError(
                "the likelihood fit of me() terms is for Gaussian models without weights or se(); "
                "use multilevel.sample(...) for the others"
            )
        if reml or nagq is not None or laplace is not None or start is not None:
            raise ModelError(
                "the me() likelihood fit is by maximum likelihood, with the latent covariate integrated "
                "out exactly: drop reml=, nagq=, laplace= and start="
            )
        return fit_measurement(self, result_type=MeasurementFit)

    def _fit_lmm(self, reml: bool, start: Any, control: FitControl, progress: bool = False) -> Any:
        from ..lmm.fit import fit_objective
        from ..present.lmm_fit import LmmFit
        from ..present.progress import Progress

        obj = self.objective(reml, control)
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
        pandas / polars DataFrame, pyarrow Table or dict of arrays; or a Dask DataFrame or
        Parquet files (path, glob or list), on the workers of the active
        ``dask.distributed`` client (or a ``LocalCluster`` for the call): an LMM's
        cross-products in one pass, no rows kept; a GLMM's rows kept on the workers, one
        pass per PIRLS iteration.
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
        Show on stderr the rows read (partitioned data) and the LMM optimizer's evaluations
        and criterion (a partitioned GLMM's: the passes over the rows).
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
    from .distributed_glmm import fit_partitioned_data

    if not isinstance(progress, bool):
        raise ModelError(f"progress must be True or False, got {progress!r}")
    if is_partitioned(data):
        return fit_partitioned_data(
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
            laplace,
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
