"""Public entry points: :func:`fit` and :class:`Model`.

``fit`` only chains the stages: parse and materialize (:mod:`multilevel.model.design`),
cross-products (:mod:`multilevel.linalg.crossprod`), objective
(:mod:`multilevel.lmm.objective`), optimizer (:mod:`multilevel.optim.optimize`),
checks (:mod:`multilevel.lmm.inference`) and the result object.
"""

from __future__ import annotations

import warnings
from functools import cached_property
from typing import Any

import numpy as np

from .errors import ConvergenceWarning, ModelError, SeparationWarning, SingularFitWarning
from .linalg.crossprod import CrossProducts, compute_crossprods
from .linalg.threads import blas_threads
from .lmm.gradient import criterion_and_gradient
from .lmm.inference import check_convergence
from .lmm.objective import LmmObjective
from .lmm.results import LmmFit
from .lmm.solution import solve
from .lmm.start import moment_start
from .model.design import Design, build_model
from .model.spec import ModelSpec
from .optim.optimize import OptSummary, bobyqa, lbfgsb


def _is_lmm(family: Any, link: Any) -> bool:
    name = family if isinstance(family, str) else getattr(family, "name", "")
    link_name = link if isinstance(link, str) or link is None else getattr(link, "name", "")
    if not isinstance(family, str):
        link_name = link_name or family.link.name
    return name == "gaussian" and link_name in (None, "identity")


class Model:
    """A mixed model on data, before fitting: spec, design and cross-products.

    Examples
    --------
    >>> from multilevel.datasets import load_dataset
    >>> m = Model("Reaction ~ Days + (Days | Subject)", load_dataset("sleepstudy"))
    >>> round(m.fit().fixef["Days"], 4)
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
        from .family.families import get_family

        self.formula = formula
        self.is_lmm = _is_lmm(family, link)
        self.family = get_family(family, link)
        self.spec: ModelSpec
        self.design: Design
        self.spec, self.design = build_model(
            formula, data, family=self.family.name, weights=weights, offset=offset, na_action=na_action
        )

    def graph(self) -> Any:
        """The model's directed graphical model (:class:`multilevel.present.graph.ModelGraph`)."""
        from .present.graph import model_graph

        return model_graph(self.spec)

    @cached_property
    def crossprods(self) -> CrossProducts:
        """Cross-products of ``[Z X y]``, computed once and shared by all fits."""
        return compute_crossprods(self.design, [g.n_levels for g in self.spec.groupings])

    def objective(self, reml: bool = True) -> LmmObjective:
        """The profiled criterion ``theta -> REML criterion / deviance``, unfitted."""
        return LmmObjective(self.spec, self.crossprods, reml=reml)

    def fit(
        self, *, reml: bool = True, nagq: int = 1, start: np.ndarray | None = None, optimizer: str = "bobyqa"
    ) -> Any:
        """Fit: REML (default) or ML for linear models; Laplace (``nagq=1``) or adaptive
        Gauss-Hermite quadrature (``nagq > 1``) for generalized ones."""
        if not self.is_lmm:
            with blas_threads(self.crossprods.layout.m):
                return fit_glmm_model(self, nagq=nagq, start=start)
        obj = self.objective(reml)
        with blas_threads(obj.layout.m):
            return fit_objective(obj, self.design, start=start, optimizer=optimizer)

    def sample(
        self,
        *,
        priors: dict[str, Any] | None = None,
        chains: int = 4,
        draws: int = 1000,
        warmup: int = 1000,
        seed: int = 0,
        progress: bool = True,
        target_accept: float = 0.8,
    ) -> Any:
        """Draw from the posterior with NumPyro's NUTS (see :func:`multilevel.sample`)."""
        from .bayes.sampler import sample_model

        return sample_model(
            self,
            priors=priors,
            chains=chains,
            draws=draws,
            warmup=warmup,
            seed=seed,
            progress=progress,
            target_accept=target_accept,
        )


def fit_glmm_model(model: Model, *, nagq: int = 1, start: np.ndarray | None = None) -> Any:
    """Fit a GLMM (Laplace or adaptive quadrature) and wrap the result."""
    from .glmm.fit import GRADIENT_NOT_SMALL, fit_glmm, separation_message, singular_and_messages
    from .glmm.results import GlmmFit

    est = fit_glmm(model.spec, model.design, model.family, nagq=nagq, start=start)
    singular, msgs = singular_and_messages(model.spec, est.theta)
    offset = model.design.offset if model.design.offset is not None else np.zeros(model.design.n)
    sep = separation_message(model.family, est, offset)
    if sep is not None:
        msgs = (*msgs, sep)
        warnings.warn(sep, SeparationWarning, stacklevel=3)
    ok = (
        not est.stage2.return_code.startswith(
            ("NLOPT_MAXEVAL_REACHED", "NLOPT_MAXTIME_REACHED", GRADIENT_NOT_SMALL)
        )
        and est.pirls.converged
    )
    if not est.stage2.return_code.startswith(("NLOPT", "LBFGSB_CONVERGED")):
        msgs = (*msgs, f"the optimizer stopped with the gradient not small: {est.stage2.return_code}")
        warnings.warn(msgs[-1], ConvergenceWarning, stacklevel=3)
    if not est.pirls.converged:
        msgs = (*msgs, "PIRLS did not converge at the optimum; the likelihood there is approximate")
        warnings.warn(msgs[-1], ConvergenceWarning, stacklevel=3)
    s2 = est.stage2
    opt = OptSummary(
        optimizer=s2.optimizer,
        start=est.stage1.start,
        end=s2.end,
        fval=est.deviance,
        n_evals=est.stage1.n_evals + s2.n_evals,
        seconds=est.stage1.seconds + s2.seconds,
        return_code=s2.return_code,
        converged=ok,
        singular=singular,
        messages=msgs,
    )
    return GlmmFit(
        spec=model.spec,
        design=model.design,
        family=model.family,
        nagq=nagq,
        estimate=est,
        problem=est.problem,
        optinfo=opt,
        messages=msgs,
    )


OPTIMIZERS = ("bobyqa", "lbfgsb")
SNAP_TOL = 1e-4


def _snap_to_boundary(
    obj: LmmObjective, theta: np.ndarray, fval: float, lower: np.ndarray
) -> tuple[np.ndarray, float]:
    """Put bounded elements the optimizer left just above 0 on 0 when that is no worse.

    A derivative-free optimizer stops a step short of a boundary optimum
    (``1e-8`` instead of 0); the exact boundary value is the estimate and makes a
    singular fit read as one.
    """
    near = np.isfinite(lower) & (np.abs(theta - lower) > 0) & (np.abs(theta - lower) < SNAP_TOL)
    if not near.any():
        return theta, fval
    trial = np.where(near, lower, theta)
    f = obj(trial)
    if f <= fval + 1e-10 * max(1.0, abs(fval)):
        return trial, min(f, fval)
    return theta, fval


def fit_objective(
    obj: LmmObjective, design: Design, *, start: np.ndarray | None = None, optimizer: str = "bobyqa"
) -> LmmFit:
    """Optimize a prepared objective and wrap the result.

    ``optimizer="bobyqa"`` (NLopt's BOBYQA, derivative free, lme4's default) or
    ``"lbfgsb"`` (SciPy's L-BFGS-B on the analytic gradient).
    """
    if optimizer not in OPTIMIZERS:
        raise ModelError(f"optimizer must be one of {OPTIMIZERS}, got {optimizer!r}")
    tm = obj.spec.theta_map
    lower = tm.lower_bounds
    x0 = moment_start(obj.spec, obj.cp) if start is None else np.asarray(start, dtype=float)
    if x0.shape != (tm.size,):
        raise ModelError(f"start must have {tm.size} values (one per theta), got shape {x0.shape}")
    if optimizer == "bobyqa":
        step = 0.1 * np.maximum(np.abs(x0), 0.1)
        history: list[tuple[np.ndarray, float]] = []
        theta, fval, n_evals, code, seconds = bobyqa(obj, x0, lower, initial_step=step, history=history)
    else:
        theta, fval, n_evals, code, seconds = lbfgsb(lambda x: criterion_and_gradient(obj, x), x0, lower)
    theta = np.where(np.isfinite(lower), np.maximum(theta, lower), theta)
    theta, fval = _snap_to_boundary(obj, theta, float(fval), lower)
    check = check_convergence(obj, theta, lower, history=history if optimizer == "bobyqa" else None)
    ok = code not in ("NLOPT_MAXEVAL_REACHED", "NLOPT_MAXTIME_REACHED") and check.converged
    opt = OptSummary(
        optimizer="nlopt LN_BOBYQA" if optimizer == "bobyqa" else "scipy L-BFGS-B (analytic gradient)",
        start=tuple(float(v) for v in x0),
        end=tuple(float(v) for v in theta),
        fval=float(fval),
        n_evals=n_evals,
        seconds=seconds,
        return_code=code,
        converged=ok,
        singular=check.singular,
        messages=check.messages,
    )
    for msg in check.messages:
        cls = SingularFitWarning if msg.startswith("boundary") else ConvergenceWarning
        warnings.warn(msg, cls, stacklevel=3)
    factor = obj.factor(theta)
    sol = solve(obj, factor)
    return LmmFit(
        spec=obj.spec,
        design=design,
        objective=obj,
        factor=factor,
        solution=sol,
        reml=obj.reml,
        optinfo=opt,
        messages=check.messages,
    )


def fit(
    formula: str,
    data: Any,
    *,
    family: Any = "gaussian",
    link: Any = None,
    nagq: int = 1,
    reml: bool = True,
    weights: Any = None,
    offset: Any = None,
    na_action: str = "omit",
    start: np.ndarray | None = None,
    optimizer: str = "bobyqa",
) -> Any:
    """Fit a linear or generalized linear mixed model given an lme4-style formula.

    Parameters
    ----------
    formula:
        ``"y ~ x + (1 + x | g)"``; see :func:`multilevel.formula.parse_formula`.
    data:
        pandas / polars DataFrame, pyarrow Table or dict of arrays.
    family, link:
        ``"gaussian"`` (a linear mixed model, fitted by REML or ML), or ``"binomial"``,
        ``"poisson"``, ``"Gamma"``, ``"inverse_gaussian"``, ``"negative_binomial"``
        (and ``"gaussian"`` with a non-identity link), fitted by Laplace or quadrature.
    nagq:
        GLMMs: 1 for the Laplace approximation, up to 25 for adaptive Gauss-Hermite
        quadrature (one grouping factor), 0 for the fast PIRLS-only fit.
    reml:
        LMMs: REML (default) or maximum likelihood.
    weights, offset:
        Column names or arrays of prior weights and a known offset.
    na_action:
        ``"omit"`` drops incomplete rows with a warning that counts them;
        ``"raise"`` makes them an error.
    optimizer:
        ``"bobyqa"`` (default) or ``"lbfgsb"`` (analytic gradient).

    Examples
    --------
    >>> from multilevel.datasets import load_dataset
    >>> m = fit("Reaction ~ Days + (Days | Subject)", load_dataset("sleepstudy"))
    >>> round(m.reml_criterion, 3)
    1743.628
    """
    model = Model(
        formula, data, family=family, link=link, weights=weights, offset=offset, na_action=na_action
    )
    return model.fit(reml=reml, nagq=nagq, start=start, optimizer=optimizer)
