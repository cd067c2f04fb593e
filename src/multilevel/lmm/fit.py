"""The LMM fit: optimize the profiled criterion, check the optimum, wrap the result.

lme4's ``optimizeLmer`` + ``checkConv`` + ``mkMerMod``: the objective comes
prepared (:class:`~multilevel.lmm.objective.LmmObjective`), so this stage
knows nothing of formulas or data frames.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from ..control import FitControl, time_limit_message
from ..errors import ConvergenceWarning, ModelError, SingularFitWarning, warn
from ..model.verdict import finite_verdict, is_numerical_failure, numerical_failure
from ..optim.optimize import MAXTIME, OptSummary, bobyqa, lbfgsb, time_limit
from . import one_block
from .gradient import criterion_and_gradient
from .inference import check_convergence
from .objective import LmmObjective
from .solution import solve
from .start import moment_start

SNAP_TOL = 1e-4


def _snap_to_boundary(
    obj: LmmObjective, theta: np.ndarray, fval: float, lower: np.ndarray
) -> tuple[np.ndarray, float]:
    """Put bounded elements the optimizer left just above 0 on 0 when that is no worse.

    A derivative-free optimizer stops a step short of a boundary optimum
    (``1e-8`` instead of 0); the exact boundary value is the estimate and makes a
    singular fit read as one.
    """
    if not any(0.0 < abs(t - lo) < SNAP_TOL for t, lo in zip(theta.tolist(), lower.tolist())):
        return theta, fval  # (a few numbers: quicker in Python than as array operations)
    near = np.isfinite(lower) & (np.abs(theta - lower) > 0) & (np.abs(theta - lower) < SNAP_TOL)
    trial = np.where(near, lower, theta)
    f = obj(trial)
    if f <= fval + 1e-10 * max(1.0, abs(fval)):
        return trial, min(f, fval)
    return theta, fval


def _start(obj: LmmObjective, start: Any) -> np.ndarray:
    size = obj.spec.theta_map.size
    if start is None:
        return moment_start(obj.spec, obj.cp)
    try:
        x0 = np.asarray(start, dtype=float)
    except (TypeError, ValueError):
        raise ModelError(f"start must be {size} numbers (one per theta), got {start!r}") from None
    if x0.shape != (size,):
        raise ModelError(f"start must have {size} values (one per theta), got shape {x0.shape}")
    if not np.all(np.isfinite(x0)):
        raise ModelError(f"start must be finite, got {x0.tolist()}")
    return x0


Progress = Callable[[int, float], None]


def _reporting(f: Callable[[np.ndarray], Any], progress: Progress | None) -> Callable[[np.ndarray], Any]:
    """``f`` that also tells ``progress`` the evaluations so far and the best criterion."""
    if progress is None:
        return f
    state = {"n": 0, "best": math.inf}

    def reported(x: np.ndarray) -> Any:
        out = f(x)
        value = float(out[0] if isinstance(out, tuple) else out)
        state["n"] += 1
        state["best"] = min(state["best"], value)
        progress(int(state["n"]), state["best"])
        return out

    return reported


def optimize(
    obj: LmmObjective,
    *,
    start: Any = None,
    control: FitControl | None = None,
    progress: Progress | None = None,
) -> tuple[np.ndarray, OptSummary, tuple[str, ...]]:
    """Optimize a prepared objective: theta at the optimum, the optimizer's summary
    (with the convergence verdict) and the messages, each also warned.

    ``control.optimizer``: ``"auto"`` (BFGS on the analytic gradient for a model
    with one grouping block, :mod:`multilevel.lmm.one_block`, else BOBYQA),
    ``"bobyqa"`` (NLopt's BOBYQA, derivative free, lme4's default) or ``"lbfgsb"``
    (SciPy's L-BFGS-B on the analytic gradient).
    ``progress(evaluations, best criterion)`` is called after every evaluation.
    """
    theta, opt, messages, _ = _optimize(obj, start, FitControl() if control is None else control, progress)
    return theta, opt, messages


def _optimize(
    obj: LmmObjective, start: Any, control: FitControl, progress: Progress | None
) -> tuple[np.ndarray, OptSummary, tuple[str, ...], tuple[Any, Any, Any] | None]:
    """:func:`optimize`, and the factor, solution and vcov(beta) at the optimum where
    the compiled one-block kernels computed them (else None)."""
    optimizer = control.optimizer
    lower = obj.spec.theta_map.lower_bounds
    if optimizer == "auto" and one_block.applies(obj):
        done = one_block.fit(obj, None if start is None else _start(obj, start), control)
        if done is not None:
            if progress is not None:
                progress(done.n_evals, done.fval)
            return _one_block_summary(obj, done)
    if optimizer == "auto" and obj.backend.NAME == "jax":  # jax.grad, where it is exact
        optimizer = "lbfgsb" if obj.has_gradient else "bobyqa"
    if optimizer == "lbfgsb" and not obj.has_gradient:
        raise ModelError(
            "optimizer='lbfgsb' needs the criterion's exact gradient, which the JAX factor of a wide "
            "crossed design does not give: use optimizer='bobyqa' (or 'auto')"
        )
    x0 = _start(obj, start)
    history: list[tuple[np.ndarray, float]] = []
    with time_limit(control.time_limit(obj.cp.n)):
        if optimizer in ("bobyqa", "auto"):
            step = 0.1 * np.maximum(np.abs(x0), 0.1)
            theta, fval, n_evals, code, seconds = bobyqa(
                _reporting(obj, progress), x0, lower, initial_step=step, history=history
            )
        else:
            theta, fval, n_evals, code, seconds = lbfgsb(
                _reporting(lambda x: criterion_and_gradient(obj, x), progress), x0, lower
            )
    theta = np.where(np.isfinite(lower), np.maximum(theta, lower), theta)
    theta, fval = _snap_to_boundary(obj, theta, float(fval), lower)
    check = check_convergence(obj, theta, lower, history=history if optimizer != "lbfgsb" else None)
    ok = code not in ("NLOPT_MAXEVAL_REACHED", MAXTIME) and check.converged
    messages = check.messages
    if code == MAXTIME:
        messages = (*messages, time_limit_message(control.time_limit(obj.cp.n)))
    opt = OptSummary(
        optimizer=_optimizer_name(obj, optimizer),
        start=tuple(float(v) for v in x0),
        end=tuple(float(v) for v in theta),
        fval=float(fval),
        n_evals=n_evals,
        seconds=seconds,
        return_code=code,
        converged=ok and bool(np.isfinite(fval)),
        singular=check.singular,
        messages=messages,
    )
    _warn_all(messages)
    return theta, opt, messages, None


def _optimizer_name(obj: LmmObjective, optimizer: str) -> str:
    where = "" if obj.backend.NAME == "numpy" else f", JAX on {obj.device.upper()}"
    if optimizer == "lbfgsb":
        grad = "jax.grad" if obj.backend.NAME == "jax" else "analytic gradient"
        return f"scipy L-BFGS-B ({grad}{where})"
    return "nlopt LN_BOBYQA" + (f" ({where[2:]})" if where else "")


def _warn_all(messages: tuple[str, ...]) -> None:
    for msg in messages:
        cls = SingularFitWarning if msg.startswith("boundary") else ConvergenceWarning
        warn(msg, cls)


def _one_block_summary(
    obj: LmmObjective, done: one_block.OneBlockFit
) -> tuple[np.ndarray, OptSummary, tuple[str, ...], tuple[Any, Any, Any] | None]:
    """:func:`_optimize`'s answer from the one-block BFGS fit."""
    lower = obj.spec.theta_map.lower_bounds
    theta, fval = _snap_to_boundary(obj, done.theta, done.fval, lower)
    final = done.final if theta is done.theta else None  # snapped: the caller refactors
    check = done.check
    opt = OptSummary(
        optimizer="BFGS, analytic gradient (" + ("compiled" if done.compiled else "NumPy") + ")",
        start=tuple(done.start.tolist()),
        end=tuple(theta.tolist()),
        fval=float(fval),
        n_evals=done.n_evals,
        seconds=done.seconds,
        return_code="CONVERGED",
        converged=check.converged and bool(np.isfinite(fval)),
        singular=check.singular,
        messages=check.messages,
    )
    _warn_all(check.messages)
    return theta, opt, check.messages, final


def fit_objective(
    obj: LmmObjective,
    design: Any,
    *,
    start: Any = None,
    control: FitControl | None = None,
    result_type: type[Any],
    progress: Progress | None = None,
) -> Any:
    """Optimize a prepared objective (:func:`optimize`) and wrap the result in
    ``result_type`` (:class:`~multilevel.lmm.results.LmmResult` or a subclass)."""
    try:
        control = FitControl() if control is None else control
        theta, opt, messages, final = _optimize(obj, start, control, progress)
        vcov = None
        if final is not None:
            factor, sol, vcov = final
        else:
            factor = obj.factor(theta)
            sol = solve(obj, factor)
    except Exception as exc:
        if not is_numerical_failure(exc):
            raise
        raise numerical_failure(
            "the linear mixed model fit",
            exc,
            "the model is likely too rich for the data: drop random-effect terms or fixed effects, "
            "or rescale the response and predictors",
        ) from exc
    result = result_type(
        spec=obj.spec,
        design=design,
        objective=obj,
        factor=factor,
        solution=sol,
        reml=obj.reml,
        optinfo=opt,
        messages=messages,
        known_vcov=vcov,
    )
    return finite_verdict(result)
