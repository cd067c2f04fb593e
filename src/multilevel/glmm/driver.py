"""The GLMM fit from spec to result: estimate, flag, wrap.

lme4's ``glmer`` after ``glFormula``: :func:`~multilevel.glmm.fit.fit_glmm`
estimates; this stage turns its record into the optimizer summary (with the
convergence verdict and every warning) and the result object.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..control import FitControl
from ..errors import ConvergenceWarning, SeparationWarning, warn
from ..optim.optimize import OptSummary
from .fit import GRADIENT_NOT_SMALL, fit_glmm, separation_message, singular_and_messages

STOPPED_EARLY = ("NLOPT_MAXEVAL_REACHED", "NLOPT_MAXTIME_REACHED", GRADIENT_NOT_SMALL)


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
) -> Any:
    """Fit a GLMM (Laplace or adaptive quadrature; ``laplace``: its curvature from the
    observed or the expected information) and wrap the result in ``result_type``."""
    control = FitControl() if control is None else control
    est = fit_glmm(
        spec, design, family, nagq=nagq, start=start, compiled=control.use_compiled_kernels, laplace=laplace
    )
    singular, msgs = singular_and_messages(spec, est.theta)
    offset = design.offset if design.offset is not None else np.zeros(design.n)
    sep = separation_message(family, est, offset)
    if sep is not None:
        msgs = (*msgs, sep)
        warn(sep, SeparationWarning)
    s2 = est.stage2
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
    return result_type(
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
