"""The NumPyro model of a :class:`~multilevel.model.spec.ModelSpec`, and what is drawn from it.

Gaussian responses with the identity link are sampled with the random effects
integrated out: the likelihood of ``(beta, covariance, sigma)`` comes from the
same cross-products of ``[Z X y]`` (:mod:`multilevel.linalg.crossprod`) and the same
blocked Cholesky as the REML objective, its JAX backend
(:mod:`multilevel.linalg.jax_backend`), with ``Lambda = S / sigma`` (``S`` the
lower-triangular root of each factor's covariance, ``diag(sd) L_cor``). The
log-likelihood is

    -1/2 [n log(2 pi sigma^2) - sum log w + log|M| + r2(beta) / sigma^2],

``M = Lambda'Z'WZ Lambda + I`` and ``r2(beta)`` the penalized residual sum of
squares at beta, both from the factor of the system with ``X beta`` moved into
the response (:func:`multilevel.linalg.jax_backend.at_beta`,
:func:`multilevel.linalg.criteria.marginal_loglik`). The random effects are
drawn afterwards from their exact conditional ``b = Lambda L^{-T} (c(beta) + sigma
z)``, ``z ~ N(0, I)``, once per posterior draw.
No funnel, and the sampler sees only ``p + (number of covariance parameters) + 1``
dimensions.

Other families sample the random effects, non-centred: ``b_k = z_k S_k'`` with
``z_k ~ N(0, I)``; densities and inverse links are the ones the likelihood fits
use (:mod:`multilevel.linalg.ops`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..linalg import criteria
from ..linalg.crossprod import CrossProducts, as_dense, layout_of
from ..linalg.ops import jax_ops
from ..model.design import Design
from ..model.latent import latent_names
from ..model.spec import ModelSpec
from .latent import LatentInfo, latent_columns, latent_params
from .priors import ParamInfo, Prior

LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class Term:
    offset: int
    columns: tuple[str, ...]
    cor_name: str | None  # name of its LKJ parameter when q > 1


@dataclass(frozen=True)
class Group:
    name: str
    levels: tuple[str, ...]
    columns: tuple[str, ...]
    terms: tuple[Term, ...]

    @property
    def q(self) -> int:
        return len(self.columns)

    @property
    def n_levels(self) -> int:
        return len(self.levels)


def sd_and_cor(struct: Structure, covs: list[np.ndarray]) -> dict[str, np.ndarray]:
    """SDs and correlations under brms's names from each factor's covariance ``(..., q, q)``."""
    out: dict[str, np.ndarray] = {}
    for g, C in zip(struct.groups, covs):
        sd = np.sqrt(np.maximum(np.diagonal(C, axis1=-2, axis2=-1), 0.0))
        for j, col in enumerate(g.columns):
            out[sd_name(g.name, col)] = sd[..., j]
        for t in g.terms:
            if not t.cor_name:
                continue
            for a in range(len(t.columns)):
                for b in range(a):
                    i, j = t.offset + a, t.offset + b
                    with np.errstate(invalid="ignore", divide="ignore"):
                        r = C[..., i, j] / (sd[..., i] * sd[..., j])
                    out[f"cor_{g.name}__{t.columns[b]}__{t.columns[a]}"] = r
    return out


def site_name(prm: ParamInfo) -> str:
    """Sample-site name: the parameter's own, except an intercept, which is sampled centred."""
    return f"{prm.name}_c" if prm.cls == "Intercept" else prm.name


def correlation_start(C: np.ndarray) -> np.ndarray:
    """The Cholesky root of a start for a correlation matrix: halfway from the one of the
    covariance ``C`` (a likelihood fit's) to the identity, so strictly inside the LKJ's
    support even where ``C`` is singular."""
    d = np.sqrt(np.maximum(np.diag(C), 1e-300))
    R = C / np.outer(d, d)
    R = np.where(np.isfinite(R), R, 0.0)
    return np.linalg.cholesky(0.5 * R + 0.5 * np.eye(C.shape[0]))


def sd_name(g: str, col: str) -> str:
    return f"sd_{g}__{col}"


@dataclass(frozen=True)
class Structure:
    """What the sampler needs to know about a model, fixed across data sets of its shape."""

    family: Any  # multilevel.family.Family
    marginal: bool  # Gaussian identity: random effects integrated out
    fixed_names: tuple[str, ...]
    intercept: int | None  # index of "Intercept" among fixed effects
    groups: tuple[Group, ...]
    dispersion: str | None  # "sigma" or "shape" (or None: binomial, Poisson, known SEs)
    params: tuple[ParamInfo, ...]
    latent: tuple[LatentInfo, ...] = ()  # me() / mi() columns (multilevel.bayes.latent)

    @property
    def p(self) -> int:
        return len(self.fixed_names)

    @classmethod
    def from_spec(cls, spec: ModelSpec, family: Any, latent: tuple[LatentInfo, ...] = ()) -> Structure:
        """The structure of a model; latent columns (``me()``, ``mi()``) are named by
        their terms, and the model is then sampled with its random effects (the
        marginal likelihood's cross-products would change with every draw)."""
        marginal = family.is_lmm and not latent
        names = latent_names(spec.fixed_names, latent)
        intercept = names.index("Intercept") if "Intercept" in names else None
        params: list[ParamInfo] = []
        for i, nm in enumerate(names):
            params.append(ParamInfo(nm, "Intercept" if i == intercept else "b"))
        groups = []
        for g in spec.groupings:
            terms = []
            n_cor = sum(t.q > 1 for t in g.terms)
            k = 0
            for t in g.terms:
                for col in t.columns:
                    params.append(ParamInfo(sd_name(g.name, col), "sd", group=g.name))
                cor = None
                if t.q > 1:
                    k += 1
                    cor = f"cor_{g.name}" if n_cor == 1 else f"cor_{g.name}__{k}"
                    params.append(ParamInfo(cor, "cor", group=g.name, dim=t.q))
                terms.append(Term(t.offset, t.columns, cor))
            groups.append(Group(g.name, g.levels, g.columns, tuple(terms)))
        # known SEs replace the dispersion of a family that takes them
        known_se = family.known_se and spec.parsed.se is not None
        dispersion = None if known_se else family.sampler_dispersion
        if dispersion:
            params.append(ParamInfo(dispersion, dispersion))
        params += latent_params(latent)
        return cls(
            family, marginal, tuple(names), intercept, tuple(groups), dispersion, tuple(params), latent
        )

    def disp_from(self, value: Any) -> Any:
        """The family's dispersion slot from the sampled sigma / shape."""
        if self.dispersion is None:
            return 1.0
        return self.family.dispersion_from_sampled(value)


# ---------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------


def marginal_data(cp: CrossProducts, xbar: np.ndarray) -> dict[str, Any]:
    """The cross-products the marginal likelihood reads (a pytree of arrays), ``A1R`` dense."""
    lay = cp.layout
    return {
        "A11": cp.A11,
        "A1R": as_dense(cp.A1R).reshape(lay.n1, lay.q1, lay.m),
        "ARR": cp.ARR,
        "n": np.asarray(float(cp.n)),
        "slw": np.asarray(cp.sum_log_weights),
        "xbar": xbar,
    }


def row_data(design: Design, xbar: np.ndarray) -> dict[str, Any]:
    """Row-level arrays for the non-centred model."""
    n = design.n
    return {
        "y": design.y,
        "X": design.X,
        "w": design.weights if design.weights is not None else np.ones(n),
        "offset": design.offset if design.offset is not None else np.zeros(n),
        "codes": tuple(g.codes for g in design.groups),
        "values": tuple(g.values for g in design.groups),
        "xbar": xbar,
    }


# ---------------------------------------------------------------------------
# the blocked factor (multilevel.linalg.jax_backend)
# ---------------------------------------------------------------------------


def _factor(struct: Structure, data: dict[str, Any], beta: Any, Ts: list[Any]) -> tuple[Any, Any]:
    """The marginal data's system at ``beta`` (rest ``[Z_2 ... Z_K, y - X beta]``) and its
    blocked factor at the templates."""
    from ..linalg import jax_backend

    layout = layout_of([(g.n_levels, g.q) for g in struct.groups], struct.p)
    system = jax_backend.at_beta(jax_backend.JaxSystem(data["A11"], data["A1R"], data["ARR"], layout), beta)
    return system, jax_backend.factor(system, Ts)


def marginal_loglik(struct: Structure, data: dict[str, Any], beta: Any, Ss: list[Any], sigma: Any) -> Any:
    """Log-likelihood with the random effects integrated out (``Ss`` absolute covariance roots)."""
    import jax.numpy as jnp

    system, f = _factor(struct, data, beta, [S / sigma for S in Ss])
    lay = system.layout  # p = 0: the factor's r2 is r2(beta)
    return criteria.marginal_loglik(jnp, f, jnp.zeros(0), sigma, data["n"], data["slw"], lay.mz, lay.p)


def draw_group_effects(
    struct: Structure,
    data: dict[str, Any],
    beta: Any,
    Ss: list[Any],
    sigma: Any,
    key: Any,
    noise: float = 1.0,
) -> list[Any]:
    """One draw of every factor's effects from their Gaussian conditional, ``(levels, q)`` each.

    ``b = Lambda u`` with ``u = L^{-T} (c(beta) + sigma z)``, ``z ~ N(0, I)``;
    ``noise=0`` gives the conditional mean (the conditional mode) instead of a draw.
    """
    import jax
    import jax.numpy as jnp

    from ..linalg import jax_backend

    system, f = _factor(struct, data, beta, [S / sigma for S in Ss])
    lay = system.layout  # p = 0: beta is in the response
    k1, k2 = jax.random.split(key)
    scale = noise * sigma
    z = (scale * jax.random.normal(k1, (lay.n1, lay.q1)), scale * jax.random.normal(k2, (lay.mz,)))
    return list(jax_backend.solve(system, f, jnp.zeros(0), z).b)


# ---------------------------------------------------------------------------
# the NumPyro model
# ---------------------------------------------------------------------------


def covariance_roots(struct: Structure, values: dict[str, Any]) -> list[Any]:
    """Lower-triangular ``S_k = blockdiag(diag(sd) L_cor)`` per grouping factor."""
    import jax.numpy as jnp

    out = []
    for g in struct.groups:
        S = jnp.zeros((g.q, g.q))
        for t in g.terms:
            sds = jnp.stack([values[sd_name(g.name, c)] for c in t.columns])
            q = len(t.columns)
            block = sds[:, None] * values[t.cor_name] if t.cor_name else sds[:, None]
            S = S.at[t.offset : t.offset + q, t.offset : t.offset + q].set(block)
        out.append(S)
    return out


def uncentre(struct: Structure, beta_c: Any, xbar: Any) -> Any:
    """Coefficients of the uncentred design from those of the centred one."""
    if struct.intercept is None:
        return beta_c
    i = struct.intercept
    return beta_c.at[i].add(-(beta_c @ xbar))


def make_log_joint(struct: Structure, priors: dict[str, Prior]) -> Any:
    """``(data, values) -> log prior + log-likelihood`` at constrained values, jitted.

    All of the density sits in this one compiled function; the NumPyro model
    only declares the sites (so NumPyro supplies the transforms to unconstrained
    space and their Jacobians). Evaluated outside a trace (initialization runs
    eagerly in NumPyro), it is one compiled call instead of hundreds of
    separately compiled small operations.
    """
    import jax
    import jax.numpy as jnp

    ops = jax_ops()
    fam = struct.family

    def log_joint(data: dict[str, Any], values: dict[str, Any]) -> Any:
        lp = sum(jnp.sum(priors[prm.name].dist.log_prob(values[prm.name])) for prm in struct.params)
        beta_c = jnp.stack([values[nm] for nm in struct.fixed_names]) if struct.p else jnp.zeros(0)
        beta = uncentre(struct, beta_c, data["xbar"])
        Ss = covariance_roots(struct, values)
        if struct.marginal:
            sigma = values["sigma"] if struct.dispersion else 1.0
            return lp + marginal_loglik(struct, data, beta, Ss, sigma)
        X = data["X"]
        if struct.latent:
            X, lp_latent = latent_columns(struct.latent, data["latent"], values, X)
            lp = lp + lp_latent
        eta = X @ beta + data["offset"]
        for g, S, codes, vals in zip(struct.groups, Ss, data["codes"], data["values"]):
            z = values[f"z_{g.name}"]
            lp = lp - 0.5 * jnp.sum(z * z) - 0.5 * z.size * LOG_2PI
            eta = eta + jnp.sum(vals * (z @ S.T)[codes], axis=1)
        mu = fam.link.inverse(eta, ops)
        disp = struct.disp_from(values[struct.dispersion]) if struct.dispersion else 1.0
        return lp + jnp.sum(fam.logpdf(data["y"], mu, data["w"], disp, ops))

    return jax.jit(log_joint)


def site_supports(struct: Structure, priors: dict[str, Prior]) -> dict[str, tuple[Any, tuple[int, ...]]]:
    """Support and event shape of every sample site."""
    from numpyro.distributions import constraints

    out = {
        site_name(p): (priors[p.name].dist.support, tuple(priors[p.name].dist.event_shape))
        for p in struct.params
    }
    if not struct.marginal:
        for g in struct.groups:
            out[f"z_{g.name}"] = (constraints.real, (g.n_levels, g.q))
    for li in struct.latent:
        out[li.site] = (constraints.real, (li.size,))
        for factor, levels in li.sub_groups:
            out[li.sub_site(factor)] = (constraints.real, (len(levels),))
    return out


def make_unconstrain(struct: Structure, priors: dict[str, Prior]) -> Any:
    """Jitted map from constrained site values to NumPyro's unconstrained space (leading chain axis)."""
    return unconstrain_sites(site_supports(struct, priors))


def unconstrain_sites(supports: dict[str, tuple[Any, tuple[int, ...]]]) -> Any:
    """:func:`make_unconstrain` for any table of sites ``{site: (support, event shape)}``."""
    import jax
    from numpyro.distributions.transforms import biject_to

    def unconstrain(values: dict[str, Any]) -> dict[str, Any]:
        return {k: biject_to(supports[k][0]).inv(v) for k, v in values.items()}

    return jax.jit(jax.vmap(unconstrain))


def make_constrain(struct: Structure, priors: dict[str, Prior]) -> Any:
    """``u -> (values, log|J|)``: unconstrained site values to parameter values by name."""
    names = {site_name(p): p.name for p in struct.params}
    return constrain_sites(site_supports(struct, priors), names)


def constrain_sites(supports: dict[str, tuple[Any, tuple[int, ...]]], names: dict[str, str]) -> Any:
    """:func:`make_constrain` for any table of sites; ``names`` renames sites to parameters."""
    import jax.numpy as jnp
    from numpyro.distributions.transforms import biject_to

    def constrain(u: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        values: dict[str, Any] = {}
        logdet = jnp.zeros(())
        for site, (support, _) in supports.items():
            t = biject_to(support)
            x = t(u[site])
            logdet = logdet + jnp.sum(t.log_abs_det_jacobian(u[site], x))
            values[names.get(site, site)] = x
        return values, logdet

    return constrain


# XLA's CPU fusion emitters take ~40% longer to compile the sampler for no gain in
# its run time (measured on radon: 5.7 s against 3.4 s, sampling 2.5 s either way)
CPU_COMPILER_OPTIONS = {"xla_cpu_use_fusion_emitters": False}


def compiler_options() -> dict[str, Any] | None:
    """Options for compiling the sampler on the default backend (CPU-only options on CPU)."""
    import jax

    return dict(CPU_COMPILER_OPTIONS) if jax.default_backend() == "cpu" else None


@dataclass(frozen=True)
class NutsSettings:
    """What the compiled sampling program depends on besides the model and priors."""

    chains: int
    draws: int
    warmup: int
    target_accept: float
    max_tree_depth: int
    dense_mass: bool = False


def potential_generator(struct: Structure, priors: dict[str, Prior]) -> Any:
    """``data -> (u -> potential energy)``: minus the log joint density at unconstrained
    values, with the log-Jacobian of the transforms (NumPyro's ``potential_fn_gen``)."""
    return potential_from(make_log_joint(struct, priors), make_constrain(struct, priors))


def potential_from(log_joint: Any, constrain: Any) -> Any:
    """The potential generator of a ``log_joint(data, values)`` and a ``constrain(u)``."""

    def potential_gen(data: dict[str, Any]) -> Any:
        def potential(u: dict[str, Any]) -> Any:
            values, logdet = constrain(u)
            return -(log_joint(data, values) + logdet)

        return potential

    return potential_gen


def make_runner(
    potential_gen: Any,
    settings: NutsSettings,
    *,
    progress: Any = None,
    postprocess: Any = None,
) -> Any:
    """One compiled program ``run(data, init_u, key)`` for NumPyro's NUTS kernel on all chains,
    on the potential of ``potential_gen`` (:func:`potential_generator`, :func:`potential_from`).

    NumPyro's ``hmc(algo="NUTS")`` kernel is driven here by one ``lax.scan`` per
    chain over warmup and kept iterations, the chains one after another in the
    same program, compiled once for the model structure. NumPyro's ``MCMC``
    driver initializes chains with eager operations, each compiled on its own,
    which cost more than the sampling itself on small models; chains vectorized
    with ``vmap`` took twice as long to trace and compile for the same sampling
    time on CPU. ``data`` and the starting points (unconstrained, leading chain
    axis) are arguments, so new data of the same shape reuse the compiled program.
    ``progress(i)`` is called from the loop every 1% of the iterations of all
    chains. ``postprocess(data, u, key)``, when given, maps every kept draw
    (vectorized) inside the same program; its result is returned under ``"post"``.
    """
    import jax
    import jax.numpy as jnp
    from numpyro.infer.hmc import hmc

    init_kernel, sample_kernel = hmc(potential_fn_gen=potential_gen, algo="NUTS")
    chains, draws, warmup = settings.chains, settings.draws, settings.warmup
    total = warmup + draws
    every = max(total * chains // 100, 1)

    def run(data: dict[str, Any], init_u: dict[str, Any], key: Any) -> dict[str, Any]:
        def one_chain(args: Any) -> Any:
            c, u, k = args
            state = init_kernel(
                u,
                warmup,
                target_accept_prob=settings.target_accept,
                dense_mass=settings.dense_mass,
                max_tree_depth=settings.max_tree_depth,
                model_args=(data,),
                rng_key=k,
            )

            def body(state: Any, i: Any) -> tuple[Any, Any]:
                state = sample_kernel(state, model_args=(data,))
                if progress is not None:
                    done = c * total + i + 1
                    jax.lax.cond(done % every == 0, lambda: jax.debug.callback(progress, done), lambda: None)
                record = {
                    "z": state.z,
                    "diverging": state.diverging,
                    "energy": state.energy,
                    "num_steps": state.num_steps,
                    "accept_prob": state.accept_prob,
                }
                return state, record

            return jax.lax.scan(body, state, jnp.arange(total))[1]

        keys = jax.random.split(key, chains)
        collected = jax.lax.map(one_chain, (jnp.arange(chains), init_u, keys))
        out = jax.tree.map(lambda a: a[:, warmup:], collected)  # (chains, kept draws, ...)
        if postprocess is not None:
            flat = jax.tree.map(lambda a: a.reshape((chains * draws, *a.shape[2:])), out["z"])
            keys = jax.random.split(jax.random.fold_in(key, 1), chains * draws)
            post = jax.vmap(postprocess, in_axes=(None, 0, 0))(data, flat, keys)
            out["post"] = jax.tree.map(lambda a: a.reshape((chains, draws, *a.shape[1:])), post)
        return out

    return jax.jit(run, compiler_options=compiler_options())
