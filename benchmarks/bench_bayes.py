"""Bayesian benchmark: multilevel.sample against hand-written NumPyro and bambi, in one run.

radon, ``log_radon ~ basement + (basement | county)`` (919 homes, 85 counties):
multilevel (random effects integrated out, drawn afterwards), a hand-written
non-centred NumPyro model of the same model with the same priors, and bambi
(PyMC's NUTS; bambi cannot correlate group-level effects, so its uncorrelated
version). Every sampler runs 4 chains x 1000 warmup + 1000 kept draws. Wall
time includes compilation (each tool starts cold in this process: JAX, NumPyro,
ArviZ and PyMC are imported and ArviZ's ESS routine warmed up before any timing,
as they are per-process costs shared by all). ESS is ArviZ's bulk ESS, its
minimum taken over the population-level parameters (and, separately, over the
group effects); ESS/s = minimum bulk ESS / wall time.

Eight schools (non-centred hand-written NumPyro against multilevel) is a second,
smaller table.

The whole comparison runs twice, each time in a fresh process: first with an
empty JAX compilation cache (everything compiles: a first session), then with
the cache the first run filled (a later session). JAX's persistent cache serves
every JAX sampler in the process, the hand-written one included; PyMC keeps its
own compiled-code cache. Within a process, "compiled program reused" samples the
same model structure a second time (new seed).

    python benchmarks/bench_bayes.py [--json out.json] [--skip-bambi]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from typing import Any

import numpy as np

import multilevel

PRIORS = {"Intercept": "normal(0, 5)", "b": "normal(0, 5)", "sd": "normal(0, 1)", "sigma": "normal(0, 1)"}
CHAINS, DRAWS, WARMUP = 4, 1000, 1000


def _ess(draws: np.ndarray) -> float:
    import arviz as az

    return float(az.ess(np.asarray(draws), method="bulk"))


def _min_ess(named: dict[str, np.ndarray]) -> tuple[float, str]:
    vals = {k: _ess(v) for k, v in named.items() if np.std(v) > 0}
    k = min(vals, key=lambda n: vals[n])
    return vals[k], k


def _result(wall: float, pop: dict[str, np.ndarray], groups: dict[str, np.ndarray], divergences: int) -> dict:
    """One tool's row: wall time, the smallest bulk ESS (population parameters, and
    group effects when there are any), divergences and posterior means."""
    ess, worst = _min_ess(pop)
    return {
        "wall_s": wall,
        "min_ess": ess,
        "worst": worst,
        "min_ess_group": _min_ess(groups)[0] if groups else float("nan"),
        "divergences": int(divergences),
        "means": {k: float(np.mean(v)) for k, v in pop.items()},
    }


def run_multilevel(formula: str, data: Any, priors: dict[str, str], **kw: Any) -> dict[str, Any]:
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        post = multilevel.sample(
            formula, data, priors=priors, chains=CHAINS, draws=DRAWS, warmup=WARMUP, **kw
        )
    wall = time.perf_counter() - t0
    pop = post.draws(group_effects=False)
    full = post.draws(group_effects=True)
    groups = {k: v for k, v in full.items() if k.startswith("r_")}
    return _result(wall, pop, groups, post.divergences)


def run_numpyro(model: Any, *args: Any) -> tuple[dict[str, np.ndarray], float, int]:
    """NumPyro's MCMC with NUTS, chains vectorized (faster than sequential here):
    draws by chain, wall time including compilation, divergences."""
    import jax
    from numpyro.infer import MCMC, NUTS

    t0 = time.perf_counter()
    mcmc = MCMC(
        NUTS(model),
        num_warmup=WARMUP,
        num_samples=DRAWS,
        num_chains=CHAINS,
        chain_method="vectorized",
        progress_bar=False,
    )
    mcmc.run(jax.random.PRNGKey(0), *args, extra_fields=("diverging",))
    s = {k: np.asarray(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    wall = time.perf_counter() - t0
    return s, wall, int(np.sum(np.asarray(mcmc.get_extra_fields()["diverging"])))


def radon_hand_written(data: Any) -> dict[str, Any]:
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    county = np.asarray(data["county"].cat.codes)
    J = int(county.max()) + 1
    x = data["basement"].to_numpy(float)
    xc = x - x.mean()
    y = data["log_radon"].to_numpy(float)

    def model(xc: Any, county: Any, y: Any) -> None:
        a = numpyro.sample("a", dist.Normal(0.0, 5.0))  # intercept of the centred predictor
        b = numpyro.sample("b", dist.Normal(0.0, 5.0))
        tau = numpyro.sample("tau", dist.HalfNormal(1.0).expand([2]).to_event(1))
        L = numpyro.sample("L", dist.LKJCholesky(2, 1.0))
        z = numpyro.sample("z", dist.Normal(0.0, 1.0).expand([J, 2]).to_event(2))
        r = z @ (tau[:, None] * L).T
        sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
        mu = a + r[county, 0] + (b + r[county, 1]) * xc
        numpyro.sample("y", dist.Normal(mu, sigma), obs=y)

    s, wall, divergences = run_numpyro(model, jnp.asarray(xc), jnp.asarray(county), jnp.asarray(y))
    L, tau, z = s["L"], s["tau"], s["z"]
    cov_root = tau[..., :, None] * L
    r = np.einsum("cdjk,cdlk->cdjl", z, cov_root)
    pop = {
        "Intercept": s["a"] - s["b"] * x.mean(),
        "basement": s["b"],
        "sd_county__Intercept": tau[..., 0],
        "sd_county__basement": tau[..., 1],
        "cor_county__Intercept__basement": L[..., 1, 0],
        "sigma": s["sigma"],
    }
    groups = {f"r[{j},{k}]": r[:, :, j, k] for j in range(J) for k in range(2)}
    return _result(wall, pop, groups, divergences)


def radon_bambi(data: Any) -> dict[str, Any] | None:
    try:
        import bambi as bmb
    except Exception as exc:  # bambi is optional (pip install -e .[bench])
        print(f"bambi unavailable: {exc}")
        return None
    df = data[["log_radon", "basement", "county"]].copy()
    t0 = time.perf_counter()
    model = bmb.Model(
        "log_radon ~ basement + (basement | county)",
        df,
        priors={
            "Intercept": bmb.Prior("Normal", mu=0, sigma=5),
            "basement": bmb.Prior("Normal", mu=0, sigma=5),
            "1|county": bmb.Prior("Normal", mu=0, sigma=bmb.Prior("HalfNormal", sigma=1)),
            "basement|county": bmb.Prior("Normal", mu=0, sigma=bmb.Prior("HalfNormal", sigma=1)),
            "sigma": bmb.Prior("HalfNormal", sigma=1),
        },
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = model.fit(draws=DRAWS, tune=WARMUP, chains=CHAINS, cores=2, random_seed=0, progressbar=False)
    wall = time.perf_counter() - t0
    post = idata.posterior
    pop = {
        "Intercept": post["Intercept"].values,
        "basement": post["basement"].values,
        "sd_county__Intercept": post["1|county_sigma"].values,
        "sd_county__basement": post["basement|county_sigma"].values,
        "sigma": post["sigma"].values,
    }
    re = post["1|county"].values
    groups = {f"r[{j}]": re[:, :, j] for j in range(re.shape[2])}
    return _result(wall, pop, groups, int(idata.sample_stats["diverging"].values.sum()))


def eight_schools_hand_written(data: Any) -> dict[str, Any]:
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    y = jnp.asarray(data["y"].to_numpy(float))
    se = jnp.asarray(data["sigma"].to_numpy(float))

    def model(y: Any, se: Any) -> None:
        mu = numpyro.sample("mu", dist.Normal(0.0, 5.0))
        tau = numpyro.sample("tau", dist.HalfCauchy(5.0))
        eta = numpyro.sample("eta", dist.Normal(0.0, 1.0).expand([8]).to_event(1))
        numpyro.sample("y", dist.Normal(mu + tau * eta, se), obs=y)

    s, wall, divergences = run_numpyro(model, y, se)
    pop = {"Intercept": s["mu"], "sd_school__Intercept": s["tau"]}
    return _result(wall, pop, {}, divergences)


def print_rows(title: str, rows: dict[str, dict[str, Any]], base: str) -> None:
    print(f"\n### {title}\n")
    print(
        "| tool | wall time incl. compile (s) | min bulk ESS (population) | slowest parameter | "
        "min bulk ESS (group effects) | ESS/s | ESS/s vs multilevel | divergences |"
    )
    print("|---|---:|---:|---|---:|---:|---:|---:|")
    b = rows[base]["min_ess"] / rows[base]["wall_s"]
    for name, r in rows.items():
        rate = r["min_ess"] / r["wall_s"]
        print(
            f"| {name} | {r['wall_s']:.1f} | {r['min_ess']:.0f} | {r['worst']} | {r['min_ess_group']:.0f} | "
            f"{rate:.0f} | {rate / b:.2f}x | {r['divergences']} |"
        )


def run_scenario(skip_bambi: bool) -> dict[str, Any]:
    # per-process costs shared by every tool, paid before any timing
    import arviz  # noqa: F401
    import jax
    import numpyro  # noqa: F401

    from multilevel.bayes.sampler import enable_x64

    enable_x64()  # all JAX samplers in this process: double precision, the shared compilation cache
    jax.numpy.zeros(1).block_until_ready()  # start JAX's CPU backend
    _ess(np.random.default_rng(0).normal(size=(4, 100)))
    if not skip_bambi:
        try:
            import bambi  # noqa: F401
        except Exception:
            pass

    radon = multilevel.load_dataset("radon")
    rows: dict[str, dict[str, Any]] = {}
    formula = "log_radon ~ basement + (basement | county)"
    rows["multilevel"] = run_multilevel(formula, radon, PRIORS, seed=0, progress=False)
    rows["multilevel, compiled program reused"] = run_multilevel(
        formula, radon, PRIORS, seed=1, progress=False
    )
    rows["hand-written NumPyro (non-centred)"] = radon_hand_written(radon)
    if not skip_bambi:
        bambi_row = radon_bambi(radon)
        if bambi_row is not None:
            rows["bambi / PyMC (uncorrelated)"] = bambi_row
    schools = multilevel.load_dataset("eight_schools")
    rows8: dict[str, dict[str, Any]] = {}
    pri8 = {"Intercept": "normal(0, 5)", "sd": "cauchy(0, 5)"}
    rows8["multilevel"] = run_multilevel(
        "y | se(sigma) ~ 1 + (1 | school)", schools, pri8, seed=0, progress=False
    )
    rows8["hand-written NumPyro (non-centred)"] = eight_schools_hand_written(schools)
    return {"radon": rows, "eight_schools": rows8}


def report(label: str, res: dict[str, Any]) -> None:
    rows, rows8 = res["radon"], res["eight_schools"]
    print_rows(
        f"radon, {label}: log_radon ~ basement + (basement | county), {CHAINS} chains x {DRAWS} draws "
        f"({WARMUP} warmup)",
        rows,
        "multilevel",
    )
    print("\nposterior means:")
    for name, r in rows.items():
        print(f"  {name}: " + ", ".join(f"{k}={v:.3f}" for k, v in r["means"].items()))
    print_rows(f"eight schools, {label}: y | se(sigma) ~ 1 + (1 | school)", rows8, "multilevel")
    print("\nposterior means (reference: mu 4.41, tau 3.60):")
    for name, r in rows8.items():
        print(f"  {name}: " + ", ".join(f"{k}={v:.3f}" for k, v in r["means"].items()))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--skip-bambi", action="store_true")
    ap.add_argument("--scenario-out", help=argparse.SUPPRESS)  # internal: one scenario, results to this file
    args = ap.parse_args()
    if args.scenario_out:
        with open(args.scenario_out, "w") as fh:
            json.dump(run_scenario(args.skip_bambi), fh)
        return
    results = {}
    with tempfile.TemporaryDirectory() as cache:
        for label in ("first session (empty compilation cache)", "later session (compilation cache filled)"):
            out = os.path.join(cache, "result.json")
            cmd = [sys.executable, __file__, "--scenario-out", out] + (
                ["--skip-bambi"] if args.skip_bambi else []
            )
            env = dict(os.environ, MULTILEVEL_JAX_CACHE=os.path.join(cache, "jax"))
            subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with open(out) as fh:
                results[label] = json.load(fh)
            report(label, results[label])
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
