"""Latent covariates in the sampler: ``me(x, sdx)`` and ``mi(x)`` (brms's terms).

``me(x, sdx)``: the true values are latent, ``x_true = meanme + sdme * zme`` with
``zme ~ N(0, 1)`` per row (non-centred, as brms), and the observed column is
``x ~ N(x_true, sdx)`` with the SDs known.

``mi(x)``: the column's missing values ``Ymi_x`` are parameters, and the column,
observed and imputed, has its own regression ``x ~ N(W gamma, sigma_x)`` (the
sub-model's formula, fixed effects; its predictors centred as brms centres them,
so its intercept prior is on the centred intercept).

In either case the design columns of ``x`` (its main effect and its interactions,
``X0 + x D`` with ``D`` the other factors of the product) are recomputed from the
latent values in every evaluation; they are not centred (brms's "special" terms
are not).
Names follow brms: ``meanme_x``, ``sdme_x``, ``x_Intercept``, ``x_z``, ``sigma_x``,
``Ymi_x[<row>]``; the outcome model's coefficient is named by its term, ``me(x, sdx)``
or ``mi(x)``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..model.latent import LatentInfo
from .priors import ParamInfo, Prior, default_priors, half_student_t, mad

LOG_2PI = math.log(2 * math.pi)


def latent_params(infos: tuple[LatentInfo, ...]) -> list[ParamInfo]:
    """The parameters the latent columns add, with the keys priors address them by."""
    out = []
    for li in infos:
        c = li.column
        if li.kind == "me":
            out.append(ParamInfo(f"meanme_{c}", "meanme", keys=(f"meanme_{c}", "meanme")))
            out.append(ParamInfo(f"sdme_{c}", "sdme", keys=(f"sdme_{c}", "sdme")))
            continue
        for j, nm in enumerate(li.sub_names):
            if j == li.sub_intercept:
                out.append(ParamInfo(nm, "Intercept", keys=(nm, f"Intercept_{c}", f"b_{nm}")))
            else:
                out.append(ParamInfo(nm, "b", keys=(nm, f"b_{nm}", f"b_{c}", "b")))
        out.append(ParamInfo(f"sigma_{c}", "sigma", keys=(f"sigma_{c}",)))
        for g, _ in li.sub_groups:
            out.append(ParamInfo(li.sub_sd(g), "sd", keys=(li.sub_sd(g), f"sd_{g}__{c}", f"sd_{c}")))
    return out


def latent_defaults(
    infos: tuple[LatentInfo, ...], data: tuple[dict[str, Any], ...], params: list[ParamInfo]
) -> dict[str, Prior]:
    """Defaults as the outcome model's, scaled to each latent column's observed values:
    the latent mean and the sub-model's intercept ``student_t(3, median(x), s)``, SDs
    half ``student_t(3, 0, s)`` with ``s = max(2.5, mad(x))``, the sub-model's slopes as
    the outcome model's (:func:`multilevel.bayes.priors.default_priors`)."""
    import numpyro.distributions as dist

    wanted = {p.name for p in params}
    out: dict[str, Prior] = {}
    for li, d in zip(infos, data):
        x = np.asarray(d["obs"])[np.asarray(d["observed"])]
        s = float(f"{max(2.5, mad(x)):.3g}")
        loc = float(f"{float(np.median(x)):.4g}")
        centre = Prior(dist.StudentT(3.0, loc, s), f"student_t(3, {loc:g}, {s:g})", "default")
        spread = Prior(half_student_t(3.0, s), f"student_t(3, 0, {s:g}) [truncated at 0]", "default")
        c = li.column
        if li.kind == "me":
            out[f"meanme_{c}"], out[f"sdme_{c}"] = centre, spread
            continue
        subs = [
            ParamInfo(nm, "Intercept" if j == li.sub_intercept else "b") for j, nm in enumerate(li.sub_names)
        ]
        rest = default_priors(
            [p for p in subs if p.name in wanted and p.cls == "b"],
            y=x,
            X=np.asarray(d["W"])[np.asarray(d["observed"])],
            names=li.sub_names,
            identity_gaussian=True,
        )
        out.update(rest)
        if li.sub_intercept is not None:
            out[li.sub_names[li.sub_intercept]] = centre
        out[f"sigma_{c}"] = spread
        out.update({li.sub_sd(g): spread for g, _ in li.sub_groups})
    return {k: v for k, v in out.items() if k in wanted}


def _sub_coefficients(li: LatentInfo, d: dict[str, Any], values: dict[str, Any]) -> Any:
    """The sub-model's coefficients on its uncentred predictors."""
    import jax.numpy as jnp

    g = jnp.stack([values[nm] for nm in li.sub_names])
    if li.sub_intercept is None:
        return g
    return g.at[li.sub_intercept].add(-(g @ d["wbar"]))


def latent_columns(
    infos: tuple[LatentInfo, ...], data: tuple[dict[str, Any], ...], values: dict[str, Any], X: Any
) -> tuple[Any, Any]:
    """The design with each latent column replaced by its values, and the log density of
    the latent values and of what is observed of them."""
    import jax.numpy as jnp

    lp = jnp.zeros(())
    for li, d in zip(infos, data):
        if li.kind == "me":
            z = values[li.site]
            true = values[f"meanme_{li.column}"] + values[f"sdme_{li.column}"] * z
            r = (d["obs"] - true) / d["sd"]
            lp = (
                lp
                - 0.5 * jnp.sum(z * z)
                - 0.5 * jnp.sum(r * r)
                - jnp.sum(jnp.log(d["sd"]))
                - z.size * LOG_2PI
            )
        else:
            true = d["obs"].at[d["index"]].set(values[li.site])
            mu = d["W"] @ _sub_coefficients(li, d, values)
            for (g, _), codes in zip(li.sub_groups, d["codes"]):
                z = values[li.sub_site(g)]
                lp = lp - 0.5 * jnp.sum(z * z) - 0.5 * z.size * LOG_2PI
                mu = mu + (values[li.sub_sd(g)] * z)[codes]
            sigma = values[f"sigma_{li.column}"]
            r = (true - mu) / sigma
            lp = lp - 0.5 * jnp.sum(r * r) - r.size * (jnp.log(sigma) + 0.5 * LOG_2PI)
        X = X.at[:, list(li.in_x)].set(d["X0"] + true[:, None] * d["D"])
    return X, lp


def latent_report(
    infos: tuple[LatentInfo, ...], data: tuple[dict[str, Any], ...], values: dict[str, Any]
) -> dict[str, Any]:
    """What the posterior reports of the latent parts: the sub-models' coefficients
    (uncentred), their SDs, the latent means and SDs, the imputed values."""
    out: dict[str, Any] = {}
    for li, d in zip(infos, data):
        c = li.column
        if li.kind == "me":
            out[f"meanme_{c}"] = values[f"meanme_{c}"]
            out[f"sdme_{c}"] = values[f"sdme_{c}"]
            continue
        g = _sub_coefficients(li, d, values)
        for j, nm in enumerate(li.sub_names):
            out[nm] = g[j]
        out[f"sigma_{c}"] = values[f"sigma_{c}"]
        out[li.site] = values[li.site]
        for g, _ in li.sub_groups:
            out[li.sub_sd(g)] = values[li.sub_sd(g)]
            out[f"r_{g}__{c}"] = values[li.sub_sd(g)] * values[li.sub_site(g)]
    return out


def latent_init(
    infos: tuple[LatentInfo, ...], data: tuple[dict[str, Any], ...], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Starting values from the observed columns: moments (``me``), least squares on the
    observed rows (``mi``), jittered."""
    out: dict[str, np.ndarray] = {}
    for li, d in zip(infos, data):
        c = li.column
        obs = np.asarray(d["obs"], float)
        if li.kind == "me":
            sd = np.asarray(d["sd"], float)
            mean = float(obs.mean())
            spread = math.sqrt(max(float(obs.var()) - float(np.mean(sd**2)), 0.1 * float(obs.var()), 1e-8))
            out[f"meanme_{c}"] = np.asarray(mean + 0.1 * spread * rng.standard_normal())
            out[f"sdme_{c}"] = np.asarray(spread * math.exp(0.1 * rng.standard_normal()))
            out[li.site] = (obs - mean) / spread + 0.1 * rng.standard_normal(obs.size)
            continue
        seen = np.asarray(d["observed"])
        W = np.asarray(d["W"], float)
        Wc = W - np.asarray(d["wbar"], float)
        g, *_ = np.linalg.lstsq(Wc[seen], obs[seen], rcond=None)
        resid = obs[seen] - Wc[seen] @ g
        sigma = max(float(np.sqrt(np.mean(resid**2))), 1e-3 * (float(np.std(obs[seen])) or 1.0))
        for grp, levels in li.sub_groups:
            out[li.sub_sd(grp)] = np.asarray(0.5 * sigma * math.exp(0.1 * rng.standard_normal()))
            out[li.sub_site(grp)] = 0.1 * rng.standard_normal(len(levels))
        for j, nm in enumerate(li.sub_names):
            site = f"{nm}_c" if j == li.sub_intercept else nm  # intercepts are sampled centred
            out[site] = np.asarray(g[j] + 0.1 * sigma / math.sqrt(seen.sum()) * rng.standard_normal())
        out[f"sigma_{c}"] = np.asarray(sigma * math.exp(0.1 * rng.standard_normal()))
        idx = np.asarray(d["index"])
        out[li.site] = Wc[idx] @ g + 0.1 * sigma * rng.standard_normal(idx.size)
    return out
