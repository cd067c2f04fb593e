"""Point estimates to set beside posterior expectations: likelihood estimates and the MAP.

The MAP maximizes ``log p(y | beta, S, dispersion) + log prior`` over the
population parameters, with the random effects integrated out: exactly (the
JAX marginal likelihood of :mod:`multilevel.bayes.program`) for Gaussian
models, by the Laplace approximation (PIRLS, :mod:`multilevel.glmm.pirls`) for
the others. Densities are those of the parameters the priors are stated on
(SDs, the Cholesky factor of each correlation matrix, sigma or shape), with no
Jacobian: the mode of the density the user wrote down. SDs are allowed to
reach 0, where hierarchical posteriors often peak.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from ..optim.optimize import bobyqa
from .program import draw_group_effects, marginal_loglik, sd_and_cor, sd_name


def _named_covariances(struct: Any, covs: list[np.ndarray]) -> dict[str, float]:
    return {k: float(v) for k, v in sd_and_cor(struct, covs).items()}


def _group_values(struct: Any, bs: list[np.ndarray]) -> dict[str, float]:
    out = {}
    for g, b in zip(struct.groups, bs):
        for li, lev in enumerate(g.levels):
            for j, col in enumerate(g.columns):
                out[f"r_{g.name}[{lev},{col}]"] = float(b[li, j])
    return out


def likelihood_estimates(post: Any) -> dict[str, float]:
    """REML / ML / Laplace estimates of the likelihood fit under brms's names."""
    fit = post.fit
    if fit is None:
        return {}
    st = post.structure
    out = {k: float(v) for k, v in fit.fixef.items()}
    out.update(_named_covariances(st, [c.to_numpy() for c in fit.covariances.values()]))
    if st.dispersion:
        if st.marginal:  # an LMM fit: its sigma
            out[st.dispersion] = float(fit.sigma)
        else:
            out[st.dispersion] = float(st.family.sampled_from_dispersion(float(fit.estimate.disp)))
    out.update(_group_values(st, fit.ranef_values()))
    return out


class _Objective:
    """x = (theta as absolute covariance roots, beta, log dispersion) -> -log posterior."""

    def __init__(self, post: Any) -> None:
        import jax
        import jax.numpy as jnp

        self.post = post
        st = post.structure
        self.st = st
        self.spec = post.spec
        self.k = self.spec.theta_map.size
        self.p = st.p
        self.has_disp = st.dispersion is not None
        priors = post.priors
        jdata = jax.tree.map(jnp.asarray, post.data)
        xbar = jdata["xbar"]

        def values_of(Ss: list[Any], beta: Any, disp_param: Any) -> dict[str, Any]:
            vals: dict[str, Any] = {}
            if st.p:
                bc = beta.at[st.intercept].add(beta @ xbar) if st.intercept is not None else beta
                for i, nm in enumerate(st.fixed_names):
                    vals[nm] = bc[i]
            for g, S in zip(st.groups, Ss):
                for t in g.terms:
                    q = len(t.columns)
                    blk = S[t.offset : t.offset + q, t.offset : t.offset + q]
                    sd = jnp.sqrt(jnp.sum(blk * blk, axis=1))
                    for j, col in enumerate(t.columns):
                        vals[sd_name(g.name, col)] = sd[j]
                    if t.cor_name:
                        safe = jnp.where(sd > 0, sd, 1.0)
                        L = jnp.where((sd > 0)[:, None], blk / safe[:, None], jnp.eye(q))
                        vals[t.cor_name] = L
            if st.dispersion:
                vals[st.dispersion] = disp_param
            return vals

        def log_prior(Ss: list[Any], beta: Any, disp_param: Any) -> Any:
            vals = values_of(Ss, beta, disp_param)
            return sum(priors[name].dist.log_prob(v) for name, v in vals.items())

        def neg_log_post(Ss: list[Any], beta: Any, disp_param: Any) -> Any:
            lp = log_prior(Ss, beta, disp_param)
            if st.marginal:
                sigma = disp_param if st.dispersion else 1.0
                lp = lp + marginal_loglik(st, jdata, beta, Ss, sigma)
            return -lp

        self._f = jax.jit(neg_log_post)
        self.jdata = jdata

    def split(self, x: np.ndarray) -> tuple[list[np.ndarray], np.ndarray, float]:
        theta = x[: self.k]
        beta = x[self.k : self.k + self.p]
        disp_param = math.exp(x[-1]) if self.has_disp else 1.0
        return self.spec.templates(theta), beta, disp_param

    def __call__(self, x: np.ndarray) -> float:
        Ss, beta, dp = self.split(x)
        val = float(self._f(Ss, beta, dp))
        if not self.st.marginal:
            val += 0.5 * self._laplace(Ss, x[: self.k], beta, dp)
        return val if math.isfinite(val) else 1e100

    def _laplace(self, Ss: list[np.ndarray], theta: np.ndarray, beta: np.ndarray, dp: float) -> float:
        prob = self.post.fit.problem
        disp = float(self.st.disp_from(dp)) if self.has_disp else 1.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return float(prob.pirls(theta, beta, disp).laplace_deviance)

    def start(self) -> np.ndarray:
        fit = self.post.fit
        tm = self.spec.theta_map
        theta = np.asarray(fit.theta, dtype=float) * fit._re_scale
        theta = np.where(tm.row == tm.col, np.maximum(theta, 1e-3 * max(fit._re_scale, 1e-3)), theta)
        x = [theta, fit.fixef.to_numpy()]
        if self.has_disp:
            est = likelihood_estimates(self.post)
            x.append([math.log(est[self.st.dispersion])])
        return np.concatenate(x)


def posterior_mode(post: Any, group_effects: bool = False) -> dict[str, float]:
    """The MAP of the population parameters (random effects integrated out), by name."""
    if post.fit is None:
        return {}
    obj = _Objective(post)
    x0 = obj.start()
    lower = np.concatenate(
        [obj.spec.theta_map.lower_bounds, np.full(obj.p, -np.inf), [-np.inf] if obj.has_disp else []]
    )
    step = 0.1 * np.maximum(np.abs(x0), 0.1)
    x, _, _, _, _ = bobyqa(obj, x0, lower, initial_step=step, ftol_rel=1e-12)
    Ss, beta, dp = obj.split(x)
    st = post.structure
    out = {nm: float(v) for nm, v in zip(st.fixed_names, beta)}
    out.update(_named_covariances(st, [S @ S.T for S in Ss]))
    if st.dispersion:
        out[st.dispersion] = dp
    if group_effects:
        out.update(_group_values(st, _modes_at(post, obj, x, Ss, beta, dp)))
    return out


def _modes_at(
    post: Any, obj: _Objective, x: np.ndarray, Ss: list[np.ndarray], beta: Any, dp: float
) -> list[Any]:
    """Conditional modes of the group effects at the MAP."""
    import jax
    import jax.numpy as jnp

    st = post.structure
    if st.marginal:
        sigma = dp if st.dispersion else 1.0
        bs = draw_group_effects(
            st,
            obj.jdata,
            jnp.asarray(beta),
            [jnp.asarray(S) for S in Ss],
            sigma,
            jax.random.PRNGKey(0),
            noise=0.0,
        )
        return [np.asarray(b) for b in bs]
    disp = float(st.disp_from(dp)) if st.dispersion else 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = post.fit.problem.pirls(x[: obj.k], beta, disp)
    return [u @ T.T for u, T in zip(r.u, Ss)]
