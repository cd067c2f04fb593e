"""``sample()``: NUTS on the model a formula describes, from the likelihood fit's spine.

One model (:class:`~multilevel.api.Model`) (spec, design, cross-products) serves the
likelihood fit and the sampler: the fit gives the chains their starting points
and the ``point_estimates()`` table its first column; the cross-products are
the data of the marginal (Gaussian) model. Compiled samplers are cached per
model structure, so sampling again with data of the same shape (simulation-based
calibration, bootstrap-like loops) does not compile again.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..control import SampleControl
from ..errors import SeparationWarning, warn
from .latent import latent_defaults, latent_init, latent_params, latent_report
from .priors import Prior, default_priors, resolve
from .program import (
    NutsSettings,
    Structure,
    correlation_start,
    covariance_roots,
    draw_group_effects,
    make_constrain,
    make_runner,
    make_unconstrain,
    marginal_data,
    potential_generator,
    row_data,
    sd_name,
    uncentre,
)

if TYPE_CHECKING:
    from .posterior import PosteriorResult

_CACHE: dict[Any, Program] = {}
MAX_CACHE = 16


def enable_x64() -> None:
    """Double precision in JAX and the persistent compilation cache
    (:func:`multilevel.linalg.jax_setup.enable_x64_and_cache`)."""
    from ..linalg.jax_setup import enable_x64_and_cache

    enable_x64_and_cache()


@dataclass
class Program:
    """A compiled sampler for one model structure and prior set."""

    struct: Structure
    priors: dict[str, Prior]
    runner: Any  # jitted (data, init_u, key) -> draws of every chain
    progress: Any  # _Progress or None
    unconstrain: Any  # jitted constrained -> unconstrained site values


def _prior_key(priors: dict[str, Prior]) -> tuple[Any, ...]:
    """Priors written as text are equal when their text is; objects only to themselves."""
    return tuple((k, p.text, p.source, id(p.dist) if p.from_object else 0) for k, p in priors.items())


def _struct_key(struct: Structure) -> tuple[Any, ...]:
    return (
        struct.family.name,
        struct.family.link.name,
        struct.marginal,
        struct.fixed_names,
        struct.intercept,
        struct.groups,
        struct.dispersion,
        struct.params,
        struct.latent,
    )


class _Progress:
    """A tqdm bar the compiled sampling loop advances through a host callback."""

    def __init__(self, total: int, desc: str) -> None:
        self.total = total
        self.desc = desc
        self.bar: Any = None

    def start(self) -> None:
        from tqdm.auto import tqdm

        self.bar = tqdm(total=self.total, desc=self.desc, unit="it", leave=True)

    def __call__(self, i: Any) -> None:
        if self.bar is not None:
            self.bar.update(int(i) - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def get_program(
    struct: Structure, priors: dict[str, Prior], settings: NutsSettings, *, progress: bool
) -> Program:
    key = (_struct_key(struct), _prior_key(priors), settings, progress)
    prog = _CACHE.get(key)
    if prog is not None:
        return prog

    n_iter = settings.chains * (settings.warmup + settings.draws)
    bar = _Progress(n_iter, f"sampling {settings.chains} chains") if progress else None
    runner = make_runner(
        potential_generator(struct, priors),
        settings,
        progress=bar,
        postprocess=_postprocess_fn(struct, make_constrain(struct, priors)),
    )
    prog = Program(struct, priors, runner, bar, make_unconstrain(struct, priors))
    if len(_CACHE) >= MAX_CACHE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = prog
    return prog


def _postprocess_fn(struct: Structure, constrain: Any) -> Any:
    """(data, one unconstrained draw, key) -> parameter values, coefficients and group effects."""
    import jax.numpy as jnp

    def fn(data: dict[str, Any], u: dict[str, Any], key: Any) -> dict[str, Any]:
        vals, _ = constrain(u)
        beta_c = jnp.stack([vals[nm] for nm in struct.fixed_names]) if struct.p else jnp.zeros(0)
        beta = uncentre(struct, beta_c, data["xbar"])
        Ss = covariance_roots(struct, vals)
        if struct.marginal:
            sigma = vals["sigma"] if struct.dispersion else 1.0
            bs = draw_group_effects(struct, data, beta, Ss, sigma, key)
        else:
            bs = [vals[f"z_{g.name}"] @ S.T for g, S in zip(struct.groups, Ss)]
        latent = {li.site for li in struct.latent if li.kind == "me"}
        kept = {k: v for k, v in vals.items() if not k.startswith("z_") and k not in latent}
        if struct.latent:
            kept.update(latent_report(struct.latent, data["latent"], vals))
        return {"beta": beta, "S": Ss, "r": bs, "values": kept}

    return fn


def default_xbar(struct: Structure, X: np.ndarray) -> np.ndarray:
    """Column means that centre the predictors (0 at the intercept); zeros without an intercept."""
    if struct.intercept is None or struct.p < 2:
        return np.zeros(struct.p)
    xbar = X.mean(axis=0)
    xbar[struct.intercept] = 0.0
    for li in struct.latent:  # brms centres none of its special terms, nor their interactions
        xbar[list(li.in_x)] = 0.0
    return xbar


def _init_values(
    struct: Structure, fit: Any, xbar: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Constrained starting values near the likelihood fit, jittered per chain."""
    beta = fit.fixef.to_numpy()
    try:
        se = fit.fixef_se.to_numpy()
    except Exception:  # a singular Hessian: jitter on the scale of the estimate
        se = 0.1 * np.maximum(np.abs(beta), 1.0)
    se = np.where(np.isfinite(se) & (se > 0), se, 0.1 * np.maximum(np.abs(beta), 1.0))
    b = beta + 0.5 * se * rng.standard_normal(beta.size)
    out: dict[str, np.ndarray] = {}
    for i, nm in enumerate(struct.fixed_names):
        out[nm] = np.asarray(b[i])
    if struct.intercept is not None:
        out["Intercept_c"] = np.asarray(b[struct.intercept] + b @ xbar)
        del out["Intercept"]
    lmm = struct.family.is_lmm
    scale = float(fit.sigma) if lmm and struct.dispersion else 1.0
    covs = fit.covariances
    modes = fit.ranef_values()
    for g, mode in zip(struct.groups, modes):
        C = covs[g.name].to_numpy()
        sd = np.sqrt(np.maximum(np.diag(C), 0.0))
        sd = np.where(sd > 0.05 * scale, sd, 0.1 * scale) * np.exp(0.3 * rng.standard_normal(sd.size))
        S = np.zeros((g.q, g.q))
        for t in g.terms:
            q = len(t.columns)
            sl = slice(t.offset, t.offset + q)
            for j, col in enumerate(t.columns):
                out[sd_name(g.name, col)] = np.asarray(sd[t.offset + j])
            L: np.ndarray = np.eye(q)
            if t.cor_name:
                L = correlation_start(C[sl, sl])
                out[t.cor_name] = L
            S[sl, sl] = sd[sl, None] * L
        if not struct.marginal:
            z = np.linalg.solve(S, mode.T).T
            out[f"z_{g.name}"] = z + 0.1 * rng.standard_normal(z.shape)
    if struct.dispersion:
        if lmm:  # an LMM fit: its sigma
            value = float(fit.sigma)
        else:
            value = float(struct.family.sampled_from_dispersion(float(fit.estimate.disp)))
        out[struct.dispersion] = np.asarray(value * np.exp(0.1 * rng.standard_normal()))
    return out


def init_params(
    prog: Program, fit: Any, xbar: np.ndarray, chains: int, seed: int, latent_data: tuple[Any, ...] = ()
) -> Any:
    """Unconstrained starting points near the likelihood fit, one per chain (leading axis), or None."""
    import jax
    import jax.numpy as jnp

    if fit is None:
        return None
    rng = np.random.default_rng(seed + 7919)
    per_chain = [_init_values(prog.struct, fit, xbar, rng) for _ in range(chains)]
    if prog.struct.latent:
        for values in per_chain:
            values.update(latent_init(prog.struct.latent, latent_data, rng))
    stacked = {k: np.stack([np.asarray(v[k], dtype=float) for v in per_chain]) for k in per_chain[0]}
    u = jax.tree.map(np.asarray, prog.unconstrain(stacked))  # one call for all chains
    if not all(np.all(np.isfinite(v)) for v in u.values()):
        return None
    return jax.tree.map(jnp.asarray, u)


def _default_init(prog: Program, chains: int, seed: int) -> Any:
    """Uniform(-2, 2) in unconstrained space (Stan's default) when there is no fit to start from."""
    import jax.numpy as jnp
    from numpyro.distributions.transforms import biject_to

    from .program import site_supports

    rng = np.random.default_rng(seed + 104729)
    out = {}
    for site, (support, shape) in site_supports(prog.struct, prog.priors).items():
        t = biject_to(support)
        unc_shape = t.inverse_shape(shape)
        out[site] = jnp.asarray(rng.uniform(-2, 2, size=(chains, *unc_shape)))
    return out


def model_data(struct: Structure, model: Any, xbar: np.ndarray) -> dict[str, Any]:
    if struct.marginal:
        return marginal_data(model.crossprods, xbar)
    data = row_data(model.design, xbar)
    if struct.latent:
        data["latent"] = model.latent_data
    return data


def likelihood_fit(model: Any) -> tuple[Any, tuple[str, ...]]:
    """The REML (LMM) or Laplace (GLMM) fit, its warnings kept rather than shown; but
    separation, a property of the data that the posterior inherits, is shown."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:  # with me() / mi() terms: the fit on the columns as observed
            fit = model.naive_fit() if model.latent_info else model.fit()
        except Exception as exc:  # the sampler does not need it; say why it is missing
            return None, (f"likelihood fit failed ({exc}); chains start from NumPyro's default",)
    for w in caught:
        if issubclass(w.category, SeparationWarning):
            head = str(w.message).split(" to machine precision")[0]
            warn(
                f"the likelihood fit shows {head}: the data do not bound some coefficients, so their "
                "posterior is what their priors make it; check the priors on b",
                SeparationWarning,
            )
    return fit, tuple(str(w.message) for w in caught)


def sample_model(
    model: Any,
    *,
    priors: dict[str, Any] | None = None,
    control: SampleControl | None = None,
    result_type: type[PosteriorResult] | None = None,
) -> Any:
    """Draw from the posterior of a model (see :func:`multilevel.sample`).

    ``model`` is what :class:`multilevel.api.Model` holds: ``spec``, ``family``,
    ``design``, ``crossprods`` and ``fit()`` (the likelihood fit the chains start
    from). The result is built as ``result_type`` (a
    :class:`~multilevel.bayes.posterior.PosteriorResult` subclass).
    """
    from .posterior import PosteriorResult

    ctl = SampleControl() if control is None else control
    enable_x64()
    import jax
    import jax.numpy as jnp

    latent = model.latent_info
    struct = Structure.from_spec(model.spec, model.family, latent)
    design = model.design
    xbar = default_xbar(struct, design.X)
    own = {p.name for p in latent_params(latent)}

    def defaults(params: list[Any]) -> dict[str, Prior]:
        out = default_priors(
            [p for p in params if p.name not in own],
            y=design.y,
            X=design.X,
            names=struct.fixed_names,
            identity_gaussian=struct.family.is_lmm,
        )
        if latent:
            out.update(latent_defaults(latent, model.latent_data, [p for p in params if p.name in own]))
        return out

    used = resolve(list(struct.params), priors, defaults)
    nuts = NutsSettings(ctl.chains, ctl.draws, ctl.warmup, ctl.target_accept, ctl.max_tree_depth)
    prog = get_program(struct, used, nuts, progress=ctl.progress)
    fit, fit_messages = likelihood_fit(model)
    data = model_data(struct, model, xbar)
    jdata = jax.tree.map(jnp.asarray, data)
    t0 = time.perf_counter()
    init = init_params(prog, fit, xbar, ctl.chains, ctl.seed, model.latent_data if latent else ())
    if init is None:
        init = _default_init(prog, ctl.chains, ctl.seed)
    if prog.progress is not None:
        prog.progress.start()
    try:
        raw = prog.runner(jdata, init, jax.random.PRNGKey(ctl.seed))
        raw = jax.block_until_ready(raw)
    finally:
        if prog.progress is not None:
            prog.progress.close()
    out = jax.tree.map(np.asarray, raw["post"])
    seconds = time.perf_counter() - t0
    values = out["values"]
    stats = {k: np.asarray(raw[k]) for k in ("diverging", "energy", "num_steps", "accept_prob")}
    cls = PosteriorResult if result_type is None else result_type
    return cls(
        model=model,
        structure=struct,
        priors=used,
        program=prog,
        data=data,
        values=values,
        beta=out["beta"],
        roots=out["S"],
        group_effects=out["r"],
        sample_stats=stats,
        fit=fit,
        fit_messages=fit_messages,
        settings={**asdict(nuts), "seed": ctl.seed, "seconds": seconds},
    )
