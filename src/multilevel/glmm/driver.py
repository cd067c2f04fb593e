"""The GLMM fit from spec to result: estimate, flag, wrap.

lme4's ``glmer`` after ``glFormula``: :func:`~multilevel.glmm.fit.fit_glmm`
estimates; this stage turns its record into the optimizer summary (with the
convergence verdict and every warning) and the result object.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..control import FitControl, time_limit_message
from ..errors import ConvergenceWarning, SeparationWarning, warn
from ..model.verdict import finite_verdict, is_numerical_failure, numerical_failure
from ..optim.optimize import MAXTIME, OptSummary, time_limit
from .fit import GRADIENT_NOT_SMALL, fit_glmm, separation_message, singular_and_messages

STOPPED_EARLY = ("NLOPT_MAXEVAL_REACHED", "NLOPT_MAXTIME_REACHED", GRADIENT_NOT_SMALL)


def time_message(limit: float | None, nagq: int) -> str:
    """The warning of a fit stopped at its time limit: what stopped and what to try."""
    tips = "a simpler random-effects structure, rescaled predictors, "
    if nagq > 1:
        tips += "fewer quadrature nodes (nagq=1, Laplace), "
    return time_limit_message(limit, tips)


def fit_glmm_result(
    spec: Any,
    design: Any,
    family: Any,
    *,
    nagq: int = 1,
    start: np.ndarray | None = None,
    control: FitControl | None = None,
    laplace: str = "observed",
    result_type: type[Any],
    standard_errors: bool = True,
    rows: Any = None,
) -> Any:
    """Fit a GLMM (Laplace or adaptive quadrature; ``laplace``: its curvature from the
    observed or the expected information) and wrap the result in ``result_type``;
    ``standard_errors``: whether the convergence verdict checks them (see
    :func:`~multilevel.model.verdict.finite_verdict`); ``rows``: the row passes of
    partitioned data (:class:`~multilevel.api.distributed_glmm.ClusterRows`).

    Why this is long: the verdict lists every way a GLMM fit can end (time limit,
    separation, PIRLS, the gradient, non-finite estimates), each with its message."""
    control = FitControl() if control is None else control
    # rows on a cluster: the passes' latency sets the time, so only a limit given
    limit = control.max_seconds if getattr(design, "remote", False) else control.time_limit(design.n)
    compiled = control.use_compiled_kernels
    try:
        with time_limit(limit):
            est = fit_glmm(
                spec, design, family, nagq=nagq, start=start, compiled=compiled, laplace=laplace, rows=rows
            )
    except Exception as exc:
        if not is_numerical_failure(exc):
            raise
        raise numerical_failure(
            f"the {family.name} GLMM fit (link {family.link.name!r})",
            exc,
            "the working weights vanished or the linear predictor left the link's range. Look for "
            "separation (an outcome that is all 0 or all 1 within a level), drop fixed effects or "
            "random-effect terms, or use the canonical link",
        ) from exc
    singular, msgs = singular_and_messages(spec, est.theta)
    sep = separation_message(family, est)
    if sep is not None:
        msgs = (*msgs, sep)
        warn(sep, SeparationWarning)
    s2 = est.stage2
    if MAXTIME in est.stage1.return_code or MAXTIME in s2.return_code:
        msgs = (*msgs, time_message(limit, nagq))
        warn(msgs[-1], ConvergenceWarning)
    finite = bool(np.isfinite(est.deviance)) and bool(np.all(np.isfinite(est.beta)))
    ok = not s2.return_code.startswith(STOPPED_EARLY) and est.pirls.converged and finite
    if not s2.return_code.startswith(("NLOPT", "LBFGSB_CONVERGED")):
        msgs = (*msgs, f"the optimizer stopped with the gradient not small: {s2.return_code}")
        warn(msgs[-1], ConvergenceWarning)
    if not est.pirls.converged:
        msgs = (*msgs, "PIRLS did not converge at the optimum; the likelihood there is approximate")
        warn(msgs[-1], ConvergenceWarning)
    if not finite:
        msgs = (*msgs, "the optimum has a non-finite deviance or coefficient; the fit failed")
        warn(msgs[-1], ConvergenceWarning)
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
    result = result_type(
        spec=spec,
        design=design,
        family=family,
        nagq=nagq,
        laplace=est.laplace,
        estimate=est,
        problem=est.problem,
        optinfo=opt,
        messages=msgs,
    )
    return finite_verdict(result, standard_errors=standard_errors)
