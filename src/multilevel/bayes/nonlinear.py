"""Full Bayes for nonlinear mixed models: the model of a
:class:`~multilevel.model.nonlinear.NlmmProblem` (brms' ``nl = TRUE``) on NumPyro's NUTS.

Each parameter of the mean is ``phi_k = X_k beta_k + Z_k b_k``; the random effects
are sampled non-centred per grouping block, ``b = z S'`` with ``z ~ N(0, I)`` and
``S = diag(sd) L_cor`` (an LKJ prior on ``L_cor`` for a correlated term), and the
response is Gaussian around the mean expression, evaluated by the same parser's
tree (:mod:`multilevel.formula.expression`) that the likelihood fits differentiate.

Names follow brms with the ``b_`` of the coefficients dropped (as the linear
models' draws do): coefficients ``Asym_Intercept``, ``Asym_Treatment``; SDs
``sd_Tree__Asym_Intercept``; correlations ``cor_Tree__Asym_Intercept__Asym_x``;
``sigma``; group effects ``r_Tree__Asym[<level>,Intercept]``.

Priors are addressed as in brms: a coefficient by its name, by its parameter
(``"b_Asym"`` or ``"Asym"``, brms' ``nlpar``) or by class ``"b"``; an SD by its
name, its grouping factor (``"sd_Tree"``), its parameter (``"sd_Asym"``) or ``"sd"``.
As brms, the coefficients have no default prior: a nonlinear model's
coefficients have no scale a default could know.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelError
from ..formula.expression import evaluate
from ..linalg.ops import jax_ops
from ..model.nonlinear import NlmmProblem
from .priors import ParamInfo, Prior, default_priors, resolve
from .program import correlation_start

LOG_2PI = math.log(2 * math.pi)


@dataclass(frozen=True)
class NlTerm:
    start: int  # first column of the term in its group
    columns: tuple[str, ...]
    cor: str | None  # name of its correlation parameter (q > 1)


@dataclass(frozen=True)
class NlMember:
    """One parameter's effects inside a covariance group."""

    param: int
    param_name: str
    start: int  # its first column in the group
    columns: tuple[str, ...]


@dataclass(frozen=True)
class NlBlock:
    """One covariance group of effects by one grouping factor: one parameter's block, or
    several joined by a brms ID (``(1 | p | Tree)``), with brms names."""

    grouping: str
    levels: tuple[str, ...]
    members: tuple[NlMember, ...]
    terms: tuple[NlTerm, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(f"{m.param_name}_{c}" for m in self.members for c in m.columns)

    @property
    def q(self) -> int:
        return len(self.labels)

    def sd_names(self) -> tuple[str, ...]:
        return tuple(f"sd_{self.grouping}__{lab}" for lab in self.labels)

    @property
    def z_site(self) -> str:
        return f"z_{self.grouping}__{'_'.join(m.param_name for m in self.members)}"


@dataclass(frozen=True)
class NlStructure:
    """What the compiled sampler depends on: names, blocks, the mean's tree."""

    tree: Any
    param_names: tuple[str, ...]
    beta_names: tuple[str, ...]
    beta_params: tuple[int, ...]  # the parameter each coefficient belongs to
    blocks: tuple[NlBlock, ...]
    params: tuple[ParamInfo, ...]
    family: str = "gaussian"  # or binomial / poisson: the expression is then eta
    link: str = "identity"
    gaussian: bool = True

    def family_object(self) -> Any:
        from ..family import get_family

        return get_family(self.family, self.link)

    @classmethod
    def from_problem(cls, problem: NlmmProblem) -> NlStructure:
        names = problem.param_names
        beta_names: list[str] = []
        beta_params: list[int] = []
        params: list[ParamInfo] = []
        for k, spec in enumerate(problem.specs):
            for f in spec.fixed_names:
                nm = f"{names[k]}_{f}"
                beta_names.append(nm)
                beta_params.append(k)
                params.append(ParamInfo(nm, "b", keys=(nm, f"b_{nm}", f"b_{names[k]}", names[k], "b")))
        blocks = [_group_block(problem, members) for members in problem.groups]
        for block in blocks:
            g = block.grouping
            for j, sd in enumerate(block.sd_names()):
                pn = next(m.param_name for m in block.members if m.start <= j < m.start + len(m.columns))
                params.append(ParamInfo(sd, "sd", group=g, keys=(sd, f"sd_{g}", f"sd_{pn}", "sd")))
            for nt in block.terms:
                if nt.cor:
                    keys = (nt.cor, f"cor_{g}", "cor")
                    params.append(ParamInfo(nt.cor, "cor", group=g, dim=len(nt.columns), keys=keys))
        fam = problem.family
        if fam is None:
            params.append(ParamInfo("sigma", "sigma"))
        return cls(
            problem.mean.tree,
            names,
            tuple(beta_names),
            tuple(beta_params),
            tuple(blocks),
            tuple(params),
            "gaussian" if fam is None else fam.name,
            "identity" if fam is None else fam.link.name,
            fam is None,
        )


def _group_block(problem: NlmmProblem, members: tuple[int, ...]) -> NlBlock:
    """The covariance group of ``members`` (problem blocks): its members and terms (a single
    block keeps its formula's terms; joined blocks form one correlated term)."""
    names = problem.param_names
    parts, start = [], 0
    for b in members:
        blk = problem.blocks[b]
        g = next(gs for gs in problem.specs[blk.param].groupings if gs.name == blk.grouping)
        parts.append((NlMember(blk.param, names[blk.param], start, g.columns), g))
        start += g.q
    first, g0 = parts[0]
    if len(parts) == 1:
        n_cor = sum(t.q > 1 for t in g0.terms)
        terms = []
        for j, t in enumerate(g0.terms):
            cor = None
            if t.q > 1:
                cor = f"cor_{g0.name}__{first.param_name}" + (f"__{j + 1}" if n_cor > 1 else "")
            terms.append(NlTerm(t.offset, tuple(f"{first.param_name}_{c}" for c in t.columns), cor))
        return NlBlock(g0.name, g0.levels, (first,), tuple(terms))
    mem = tuple(m for m, _ in parts)
    block = NlBlock(g0.name, g0.levels, mem, ())
    cor = f"cor_{g0.name}__{'_'.join(m.param_name for m in mem)}"
    return NlBlock(g0.name, g0.levels, mem, (NlTerm(0, block.labels, cor),))


def problem_data(problem: NlmmProblem) -> dict[str, Any]:
    """The arrays of the log density (a pytree): each covariance group's level codes and
    effect columns (its members' side by side)."""
    codes, values = [], []
    for members in problem.groups:
        parts = []
        for b in members:
            blk = problem.blocks[b]
            cols = blk.offset + blk.codes[:, None] * blk.q + np.arange(blk.q)[None, :]
            parts.append(np.take_along_axis(problem.Z[blk.param], cols, axis=1))
        codes.append(problem.blocks[members[0]].codes.astype(np.int64))
        values.append(np.concatenate(parts, axis=1))
    return {
        "X": problem.X,
        "y": problem.y,
        "cov": dict(problem.covariates),
        "codes": tuple(codes),
        "values": tuple(values),
        "w": problem.weights if problem.weights is not None else np.ones(problem.n),
    }


def nl_priors(struct: NlStructure, problem: NlmmProblem, user: dict[str, Any] | None) -> dict[str, Prior]:
    """Every parameter's prior; the coefficients' must be given (see the module docstring)."""

    def defaults(uncovered: list[ParamInfo]) -> dict[str, Prior]:
        missing = [p.name for p in uncovered if p.cls == "b"]
        if missing:
            per_param = sorted(
                {f"b_{struct.param_names[struct.beta_params[struct.beta_names.index(m)]]}" for m in missing}
            )
            raise ModelError(
                "a nonlinear model's coefficients need priors, as in brms (no default knows their "
                f"scale): none given for {', '.join(missing)}. Give them in priors=, per parameter "
                f"({', '.join(repr(k) for k in per_param)}) or per coefficient, e.g. "
                f"priors={{{per_param[0]!r}: 'normal(0, 10)'}}"
            )
        rest = [p for p in uncovered if p.cls != "b"]
        return default_priors(
            rest, y=problem.y, X=np.zeros((problem.n, 0)), names=(), identity_gaussian=problem.gaussian
        )

    return resolve(list(struct.params), user, defaults)


def site_table(struct: NlStructure, priors: dict[str, Prior]) -> dict[str, tuple[Any, tuple[int, ...]]]:
    """Support and event shape of every sample site (parameters, then the standardized effects)."""
    from numpyro.distributions import constraints

    out = {
        p.name: (priors[p.name].dist.support, tuple(priors[p.name].dist.event_shape)) for p in struct.params
    }
    for b in struct.blocks:
        out[b.z_site] = (constraints.real, (len(b.levels), b.q))
    return out


def block_roots(struct: NlStructure, values: dict[str, Any]) -> list[Any]:
    """``S = blockdiag(diag(sd) L_cor)`` per block (lower triangular, absolute scale)."""
    import jax.numpy as jnp

    out = []
    for b in struct.blocks:
        S = jnp.zeros((b.q, b.q))
        sds = b.sd_names()
        for t in b.terms:
            q = len(t.columns)
            sd = jnp.stack([values[sds[t.start + j]] for j in range(q)])
            block = sd[:, None] * values[t.cor] if t.cor else sd[:, None]
            S = S.at[t.start : t.start + q, t.start : t.start + q].set(block)
        out.append(S)
    return out


def parameter_values(
    struct: NlStructure, data: dict[str, Any], values: dict[str, Any]
) -> tuple[Any, list[Any]]:
    """Each row's parameters (n, K) and each block's effects (levels, q) at the site values."""
    import jax.numpy as jnp

    beta = jnp.stack([values[nm] for nm in struct.beta_names])
    phi = jnp.einsum("knp,p->nk", data["X"], beta)
    effects = []
    for b, S, codes, vals in zip(struct.blocks, block_roots(struct, values), data["codes"], data["values"]):
        r = values[b.z_site] @ S.T
        effects.append(r)
        rows = vals * r[codes]
        for m in b.members:
            phi = phi.at[:, m.param].add(jnp.sum(rows[:, m.start : m.start + len(m.columns)], axis=1))
    return phi, effects


def mean_of(struct: NlStructure, covariates: dict[str, Any], phi: Any) -> Any:
    """The mean expression at parameters ``phi`` (..., K) and the covariates."""
    import jax.numpy as jnp

    env = dict(covariates)
    env.update({k: phi[..., j] for j, k in enumerate(struct.param_names)})
    return jnp.broadcast_to(evaluate(struct.tree, env, jnp), phi.shape[:-1])


def make_log_joint(struct: NlStructure, priors: dict[str, Prior]) -> Any:
    """``(data, values) -> log prior + log-likelihood`` at constrained values."""
    import jax.numpy as jnp

    fam = struct.family_object()

    def log_joint(data: dict[str, Any], values: dict[str, Any]) -> Any:
        lp = sum(jnp.sum(priors[p.name].dist.log_prob(values[p.name])) for p in struct.params)
        for b in struct.blocks:
            z = values[b.z_site]
            lp = lp - 0.5 * jnp.sum(z * z) - 0.5 * z.size * LOG_2PI
        phi, _ = parameter_values(struct, data, values)
        mu = mean_of(struct, data["cov"], phi)
        if struct.gaussian:
            sigma = values["sigma"]
            resid = (data["y"] - mu) / sigma
            loglik = -0.5 * jnp.sum(resid * resid) - resid.size * (jnp.log(sigma) + 0.5 * LOG_2PI)
        else:  # the expression is the linear predictor
            ops = jax_ops()
            loglik = jnp.sum(fam.logpdf(data["y"], fam.link.inverse(mu, ops), data["w"], 1.0, ops))
        return lp + jnp.where(jnp.isfinite(loglik), loglik, -jnp.inf)

    return log_joint


def make_postprocess(struct: NlStructure, constrain: Any) -> Any:
    """(data, one unconstrained draw, key) -> parameter values and group effects."""

    def fn(data: dict[str, Any], u: dict[str, Any], key: Any) -> dict[str, Any]:
        vals, _ = constrain(u)
        _, effects = parameter_values(struct, data, vals)
        kept = {k: v for k, v in vals.items() if not k.startswith("z_")}
        return {"values": kept, "r": effects}

    return fn


def initial_values(
    struct: NlStructure,
    problem: NlmmProblem,
    estimate: dict[str, Any],
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Constrained starting values near the likelihood fit (``beta``, ``se``, ``theta``,
    ``sigma``, ``b``), jittered."""
    beta, se = np.asarray(estimate["beta"], float), np.asarray(estimate["se"], float)
    se = np.where(np.isfinite(se) & (se > 0), se, 0.1 * np.maximum(np.abs(beta), 1.0))
    sigma = float(estimate["sigma"]) if struct.gaussian else 1.0
    out: dict[str, np.ndarray] = {}
    for i, nm in enumerate(struct.beta_names):
        out[nm] = np.asarray(beta[i] + 0.3 * se[i] * rng.standard_normal())
    Lam = problem.lambda_matrix(np.asarray(estimate["theta"], float))
    b_flat = np.asarray(estimate["b"], float)
    for b, members in zip(struct.blocks, problem.groups):
        mem = [problem.blocks[i] for i in members]
        first = np.concatenate([blk.offset + np.arange(blk.q) for blk in mem])  # level 0 of each
        T = Lam[np.ix_(first, first)] * sigma
        C = T @ T.T
        sd = np.sqrt(np.maximum(np.diag(C), 0.0))
        sd = np.where(sd > 0.05 * sigma, sd, 0.1 * sigma) * np.exp(0.2 * rng.standard_normal(sd.size))
        S = np.zeros((b.q, b.q))
        for t in b.terms:
            q = len(t.columns)
            sl = slice(t.start, t.start + q)
            L: np.ndarray = np.eye(q)
            if t.cor:
                L = correlation_start(C[sl, sl])
                out[t.cor] = L
            S[sl, sl] = sd[sl, None] * L
        for j, nm in enumerate(b.sd_names()):
            out[nm] = np.asarray(sd[j])
        modes = np.concatenate(
            [
                b_flat[blk.offset : blk.offset + blk.q * blk.n_levels].reshape(blk.n_levels, blk.q)
                for blk in mem
            ],
            axis=1,
        )
        out[b.z_site] = np.linalg.solve(S, modes.T).T + 0.1 * rng.standard_normal(modes.shape)
    if struct.gaussian:
        out["sigma"] = np.asarray(sigma * np.exp(0.1 * rng.standard_normal()))
    return out


_PROGRAMS: dict[Any, Any] = {}


def _program(
    struct: NlStructure, priors: dict[str, Prior], nuts: Any, progress: bool
) -> tuple[Any, Any, Any]:
    """(runner, unconstrain, progress bar), compiled once per structure, priors and settings."""
    from .program import constrain_sites, make_runner, potential_from, unconstrain_sites
    from .sampler import MAX_CACHE, _prior_key, _Progress

    key = (struct, _prior_key(priors), nuts, progress)
    if key not in _PROGRAMS:
        table = site_table(struct, priors)
        constrain = constrain_sites(table, {})
        bar = (
            _Progress(nuts.chains * (nuts.warmup + nuts.draws), f"sampling {nuts.chains} chains")
            if progress
            else None
        )
        runner = make_runner(
            potential_from(make_log_joint(struct, priors), constrain),
            nuts,
            progress=bar,
            postprocess=make_postprocess(struct, constrain),
        )
        if len(_PROGRAMS) >= MAX_CACHE:
            _PROGRAMS.pop(next(iter(_PROGRAMS)))
        _PROGRAMS[key] = (runner, unconstrain_sites(table), bar)
    return _PROGRAMS[key]


def sample_problem(
    problem: NlmmProblem,
    *,
    estimate: Any,
    priors: dict[str, Any] | None,
    control: Any,
) -> dict[str, Any]:
    """NUTS draws of a nonlinear mixed model. ``estimate()``, called once the priors are
    known to be complete, gives the likelihood fit the chains start near (see
    :func:`initial_values`), or None. Returns what
    :class:`multilevel.bayes.nonlinear_posterior.NonlinearPosterior` is built from."""
    import time

    from .program import NutsSettings
    from .sampler import enable_x64

    enable_x64()
    import jax
    import jax.numpy as jnp

    struct = NlStructure.from_problem(problem)
    used = nl_priors(struct, problem, priors)
    ctl = control
    nuts = NutsSettings(ctl.chains, ctl.draws, ctl.warmup, ctl.target_accept, ctl.max_tree_depth)
    runner, unconstrain, bar = _program(struct, used, nuts, ctl.progress)
    data = jax.tree.map(jnp.asarray, problem_data(problem))
    rng = np.random.default_rng(ctl.seed + 7919)
    init = None
    start = estimate()
    if start is not None:
        per_chain = [initial_values(struct, problem, start, rng) for _ in range(ctl.chains)]
        stacked = {k: np.stack([v[k] for v in per_chain]) for k in per_chain[0]}
        u = jax.tree.map(np.asarray, unconstrain(stacked))
        if all(np.all(np.isfinite(v)) for v in u.values()):
            init = jax.tree.map(jnp.asarray, u)
    if init is None:  # Stan's default: uniform(-2, 2) on the unconstrained scale
        from numpyro.distributions.transforms import biject_to

        init = {}
        for site, (support, shape) in site_table(struct, used).items():
            unc = biject_to(support).inverse_shape(shape)
            init[site] = jnp.asarray(rng.uniform(-2, 2, size=(ctl.chains, *unc)))
    t0 = time.perf_counter()
    if bar is not None:
        bar.start()
    try:
        raw = jax.block_until_ready(runner(data, init, jax.random.PRNGKey(ctl.seed)))
    finally:
        if bar is not None:
            bar.close()
    post = jax.tree.map(np.asarray, raw["post"])
    return {
        "structure": struct,
        "priors": used,
        "values": post["values"],
        "effects": post["r"],
        "sample_stats": {k: np.asarray(raw[k]) for k in ("diverging", "energy", "num_steps", "accept_prob")},
        "settings": {
            "chains": ctl.chains,
            "draws": ctl.draws,
            "warmup": ctl.warmup,
            "target_accept": ctl.target_accept,
            "max_tree_depth": ctl.max_tree_depth,
            "seed": ctl.seed,
            "seconds": time.perf_counter() - t0,
        },
    }
