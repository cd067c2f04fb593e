"""Maximum likelihood for a linear mixed model with covariates measured with known error,
``me(x, sdx)``, the true covariate integrated out exactly.

The model: ``y = X beta + sum_k b_k xi_k + Z u + e`` with ``u ~ N(0, D)``, ``e ~ N(0,
sigma^2 I)``, the true values ``xi_ki ~ N(mu_k, tau_k^2)`` independent, observed as
``w_ki = xi_ki + d_ki``, ``d_ki ~ N(0, s_ki^2)`` with the SDs ``s`` known (brms's
``me()`` model). Given the observed ``w``, each ``xi_ki`` is normal with mean ``m_ki =
mu_k + lambda_ki (w_ki - mu_k)`` and variance ``v_ki = lambda_ki s_ki^2``, where
``lambda_ki = tau_k^2 / (tau_k^2 + s_ki^2)`` is the reliability; so

    y | w ~ N(X beta + sum_k b_k m_k, Z D Z' + diag(sigma^2 + sum_k b_k^2 v_k)),
    w_k ~ N(mu_k, tau_k^2 + s_k^2),

and the log-likelihood is the sum of the two: exact, no latent dimension left. The
fit maximizes it over ``(beta, b, D, sigma, mu, tau)`` by the quasi-Newton search of
:mod:`multilevel.optim.quasi_newton` on its exact gradient
(:mod:`multilevel.lmm.measurement_loglik`, NumPy: nothing to compile);
``D = L L'`` with ``L`` each grouping's lower-triangular template, unconstrained (so
a variance on the boundary is reachable); ``V``'s determinant and inverse come from
``M = I + L'Z' R^-1 Z L`` (Woodbury), well defined at the boundary too. Standard
errors from the inverse Hessian of the whole vector (central differences of the
exact gradient). The naive fit of the same
formula with ``w`` as observed shows the attenuation ``me()`` removes (slope times
the mean reliability, roughly).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConvergenceWarning, ModelError, warn
from ..model.latent import latent_names

MAX_EFFECTS = 3000  # random effects: M is dense (q x q)
MAX_WORK = 2e8  # n x q: the dense Z L


@dataclass(frozen=True)
class MeasurementEstimate:
    """The optimum: coefficients, variance parameters, the latent covariates' moments."""

    beta: np.ndarray
    templates: list[np.ndarray]  # absolute lower-triangular roots of each grouping's covariance
    sigma: float
    mu: np.ndarray  # latent means
    tau: np.ndarray  # latent SDs
    loglik: float
    vcov: np.ndarray  # of the whole vector, in its order (beta, templates, log sigma, mu, log tau)
    names: tuple[str, ...]  # of that vector
    n_params: int
    converged: bool
    gradient_max: float
    n_evals: int
    seconds: float
    naive: Any = field(repr=False)  # the fit with the covariates as observed
    messages: tuple[str, ...] = ()


def _layout(model: Any) -> tuple[list[tuple[int, int, int]], int]:
    """Per grouping (offset in u, levels, q) and the number of random effects."""
    out, at = [], 0
    for g in model.spec.groupings:
        out.append((at, g.n_levels, g.q))
        at += g.n_levels * g.q
    return out, at


def _tril(q: int) -> tuple[np.ndarray, np.ndarray]:
    return np.tril_indices(q)


def build_loglik(model: Any) -> tuple[Any, dict[str, Any], list[tuple[int, int, int]], int]:
    """``(x, data) -> log-likelihood`` with its data and the vector's layout
    (:mod:`multilevel.lmm.measurement_loglik`, NumPy)."""
    from .measurement_loglik import loglik, measurement_data

    data = measurement_data(model)
    return loglik, data, data["layout"], model.design.X.shape[1]


def _start(model: Any, naive: Any, lay: list[tuple[int, int, int]]) -> np.ndarray:
    """From the naive ML fit: its coefficients with the slopes divided by the mean
    reliability, its variance components, the moments of the observed covariates."""
    beta = naive.fixef.to_numpy().copy()
    mus, log_taus = [], []
    for li, a in zip(model.latent_info, model.latent_data):
        w, s = a["obs"], a["sd"]
        t2 = max(float(np.var(w)) - float(np.mean(s**2)), 0.1 * float(np.var(w)), 1e-12)
        lam = float(np.mean(t2 / (t2 + s**2)))
        beta[li.index] /= max(lam, 0.05)
        mus.append(float(np.mean(w)))
        log_taus.append(0.5 * math.log(t2))
    sigma = float(naive.sigma)
    parts = [beta]
    for g, (_, _, q) in zip(model.spec.groupings, lay):
        C = naive.covariances[g.name].to_numpy()
        try:
            T = np.linalg.cholesky(C + 1e-8 * sigma**2 * np.eye(q))
        except np.linalg.LinAlgError:
            T = np.diag(np.sqrt(np.maximum(np.diag(C), 0.0)))
        T = np.where(np.abs(T) > 0, T, 0.0)
        T[np.diag_indices(q)] = np.maximum(np.diag(T), 0.05 * sigma)
        parts.append(T[_tril(q)])
    parts.append(np.array([math.log(sigma)]))
    parts.append(np.array(mus))
    parts.append(np.array(log_taus))
    return np.concatenate(parts)


def fit_measurement(model: Any, *, result_type: Any) -> Any:
    """The ML fit of a model with ``me()`` terms (see the module docstring)."""
    from ..optim.quasi_newton import minimize_gradient
    from .measurement_loglik import loglik_and_gradient

    inside = [li.label for li in model.latent_info if len(li.in_x) > 1]
    if inside:
        raise ModelError(
            f"{inside[0]} enters an interaction: the me() likelihood fit integrates latent main effects "
            "only; sample the model with multilevel.sample(...) (or the sample command)"
        )
    n = model.design.n
    lay, Q = _layout(model)
    if Q > MAX_EFFECTS or n * Q > MAX_WORK:
        raise ModelError(
            f"the me() likelihood fit holds the random effects' matrices dense; {Q} random effects on "
            f"{n} rows is too large for it: use multilevel.sample(...)"
        )
    t0 = time.perf_counter()
    naive = model.naive_fit(reml=False)
    _, data, lay, p = build_loglik(model)
    x0 = _start(model, naive, lay)

    def f(x: np.ndarray) -> tuple[float, np.ndarray]:
        v, g = loglik_and_gradient(x, data)
        return (-v, -g) if math.isfinite(v) else (math.inf, np.full(x.size, np.nan))

    res = minimize_gradient(f, x0, np.full(x0.size, -np.inf), max_evals=5_000)
    x = res.x
    H = _hessian(f, x)
    g = f(x)[1]
    try:
        vcov = np.linalg.inv(H)
        step = float(np.max(np.abs(vcov @ g)))
    except np.linalg.LinAlgError:
        vcov, step = np.full(H.shape, np.nan), math.inf
    variances = np.diag(vcov)
    finite = bool(np.all(np.isfinite(variances) & (variances > 0)))
    converged = math.isfinite(res.fval) and step < 1e-4 and finite
    messages: tuple[str, ...] = ()
    if not converged:
        messages = (
            f"the me() fit did not converge ({res.message}; Newton step {step:.2g}); the latent "
            "covariate's variance may be near zero, or the model not identified",
        )
        warn(messages[0], ConvergenceWarning)
    K = len(model.latent_info)
    Ts, at = [], p
    for _, _, q in lay:
        r, c = _tril(q)
        T = np.zeros((q, q))
        T[r, c] = x[at : at + len(r)]
        Ts.append(T)
        at += len(r)
    est = MeasurementEstimate(
        beta=x[:p],
        templates=Ts,
        sigma=math.exp(x[at]),
        mu=x[at + 1 : at + 1 + K],
        tau=np.exp(x[at + 1 + K : at + 1 + 2 * K]),
        loglik=-float(res.fval),
        vcov=vcov,
        names=_names(model, lay),
        n_params=x.size,
        converged=converged,
        gradient_max=float(np.max(np.abs(g))),
        n_evals=res.evaluations,
        seconds=time.perf_counter() - t0,
        naive=naive,
        messages=messages,
    )
    return result_type(model, est)


def _hessian(f: Any, x: np.ndarray) -> np.ndarray:
    """Central differences of the exact gradient, symmetrized."""
    from ..optim.numdiff import central_jacobian

    H = central_jacobian(lambda v: f(v)[1], x, 1e-4 * np.maximum(np.abs(x), 0.1))
    return 0.5 * (H + H.T)


def _names(model: Any, lay: list[tuple[int, int, int]]) -> tuple[str, ...]:
    names = latent_names(model.spec.fixed_names, model.latent_info)
    for g, (_, _, q) in zip(model.spec.groupings, lay):
        r, c = _tril(q)
        names += [f"T_{g.name}[{g.columns[i]},{g.columns[j]}]" for i, j in zip(r, c)]
    names.append("log(sigma)")
    names += [f"meanme_{li.column}" for li in model.latent_info]
    names += [f"log(sdme_{li.column})" for li in model.latent_info]
    return tuple(names)
