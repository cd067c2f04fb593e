# ruff: noqa: E501  (the R and Python programs this benchmark runs are kept as written)
"""Nonlinear and latent-covariate models in full Bayes: multilevel.sample against brms, in one run.

Three models of tests/data/brms (the same data, priors and names as
tests/data/brms/brms_refs.R): Orange (``circumference ~ Asym / (1 + exp((xmid - age) /
scal))``, random ``Asym`` by tree), ``y ~ me(x, sdx) + (1 | g)`` and ``y ~ mi(x) + z + (1 |
g)`` with ``x ~ z``. Every sampler runs 4 chains x 1000 warmup + 2000 kept draws, target
acceptance 0.95. brms (rstan) runs in one Rscript process: its compile time (``brm``
with ``chains = 0``) and its sampling time (the compiled model updated) are reported
apart. multilevel runs in one fresh Python process: the first call (JAX tracing and
compilation, from the persistent cache where an earlier run left it) and a second
call with a new seed (the compiled program reused). ESS: the smallest bulk ESS
(posterior package / ArviZ) over the population parameters; ESS/s = that / wall time
of the call (brms: compile + sampling, and sampling alone). Agreement: the largest
|difference of the posterior means| in Monte Carlo SEs of the difference.

    python benchmarks/bench_bayes_nl.py [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "brms"
CHAINS, WARMUP, DRAWS = 4, 1000, 2000

R_SCRIPT = r"""
suppressPackageStartupMessages({library(brms); library(jsonlite); library(posterior)})
rstan::rstan_options(boost_lib = "/usr/include")
args <- commandArgs(TRUE); dir <- args[1]
chains <- 4; warmup <- 1000; draws <- 2000
orange <- read.csv(file.path(dir, "orange.csv")); orange$Tree <- factor(orange$Tree)
me <- read.csv(file.path(dir, "me_data.csv")); me$g <- factor(me$g)
mi <- read.csv(file.path(dir, "mi_data.csv")); mi$g <- factor(mi$g)
models <- list(
  orange = list(data = orange,
    formula = bf(circumference ~ Asym / (1 + exp((xmid - age) / scal)), Asym ~ 1 + (1 | Tree),
                 xmid ~ 1, scal ~ 1, nl = TRUE),
    prior = c(prior(normal(200, 50), nlpar = "Asym"), prior(normal(700, 200), nlpar = "xmid"),
              prior(normal(350, 100), nlpar = "scal"), prior(student_t(3, 0, 40), class = "sd", nlpar = "Asym"),
              prior(student_t(3, 0, 20), class = "sigma"))),
  me = list(data = me, formula = bf(y ~ me(x, sdx) + (1 | g)),
    prior = c(prior(normal(0, 10), class = "Intercept"), prior(normal(0, 10), class = "b"),
              prior(student_t(3, 0, 2.5), class = "sd"), prior(student_t(3, 0, 2.5), class = "sigma"),
              prior(normal(0, 10), class = "meanme"), prior(student_t(3, 0, 2.5), class = "sdme"))),
  mi = list(data = mi, formula = bf(y ~ mi(x) + z + (1 | g)) + bf(x | mi() ~ z) + set_rescor(FALSE),
    prior = c(prior(normal(0, 10), class = "b", resp = "y"), prior(normal(0, 10), class = "b", resp = "x"),
              prior(normal(0, 10), class = "Intercept", resp = "y"), prior(normal(0, 10), class = "Intercept", resp = "x"),
              prior(student_t(3, 0, 2.5), class = "sigma", resp = "y"), prior(student_t(3, 0, 2.5), class = "sigma", resp = "x"),
              prior(student_t(3, 0, 2.5), class = "sd", resp = "y"))))
out <- list()
for (name in names(models)) {
  m <- models[[name]]
  t_compile <- system.time(f0 <- brm(m$formula, data = m$data, prior = m$prior, chains = 0, backend = "rstan", silent = 2))[["elapsed"]]
  t_sample <- system.time(f <- update(f0, recompile = FALSE, chains = chains, cores = 2, iter = warmup + draws,
    warmup = warmup, seed = 11, control = list(adapt_delta = 0.95), refresh = 0, silent = 2))[["elapsed"]]
  s <- summarise_draws(as_draws_df(f), "mean", "mcse_mean", "ess_bulk")
  s <- s[grepl("^(b_|bsp_|sd_|sigma|meanme_|sdme_)", s$variable), ]
  out[[name]] <- list(compile = t_compile, sample = t_sample, summary = s)
}
cat(toJSON(out, digits = NA, auto_unbox = TRUE))
"""

PY_SCRIPT = r"""
import json, sys, time, warnings
import pandas as pd
import multilevel
sys.path.insert(0, sys.argv[2])
from test_nonlinear import FORMULA, PARAMS, PRIORS, START
from test_latent import ME_PRIORS, MI_PRIORS
data = sys.argv[1]
orange = pd.read_csv(data + "/orange.csv"); me = pd.read_csv(data + "/me_data.csv"); mi = pd.read_csv(data + "/mi_data.csv")
calls = {
    "orange": lambda s: multilevel.sample(FORMULA, orange, params=PARAMS, start=START, priors=PRIORS, seed=s, **kw),
    "me": lambda s: multilevel.sample("y ~ me(x, sdx) + (1 | g)", me, priors=ME_PRIORS, seed=s, **kw),
    "mi": lambda s: multilevel.sample("y ~ mi(x) + z + (1 | g)", mi, mi={"x": "~ z"}, priors=MI_PRIORS, seed=s, **kw),
}
kw = dict(chains=4, warmup=1000, draws=2000, progress=False, target_accept=0.95)
out = {}
for name, call in calls.items():
    row = {}
    for label, seed in (("first", 1), ("second", 2)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter(); post = call(seed); t = time.perf_counter() - t0
        s = post.summary(group_effects=False)
        row[label] = {"wall": t, "ess": float(s["ess_bulk"].min()), "divergences": post.divergences,
                      "summary": {k: [float(s.at[k, "mean"]), float(s.at[k, "mcse_mean"])] for k in s.index}}
    out[name] = row
print(json.dumps(out))
"""

# our names -> brms's, as the tests compare them (tests/bayes)
sys.path.insert(0, str(ROOT / "tests" / "bayes"))
from test_latent import ME_NAMES, MI_NAMES  # noqa: E402
from test_nonlinear import BRMS_NAMES  # noqa: E402

NAMES = {"orange": BRMS_NAMES, "me": ME_NAMES, "mi": MI_NAMES}


def run_brms() -> dict | None:
    if not shutil.which("Rscript"):
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as fh:
        fh.write(R_SCRIPT)
    r = subprocess.run(["Rscript", fh.name, str(DATA)], capture_output=True, text=True)
    if r.returncode != 0:
        print("brms did not run:", r.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(r.stdout[r.stdout.index("{") :])


def run_ours() -> dict:
    r = subprocess.run(
        [sys.executable, "-c", PY_SCRIPT, str(DATA), str(ROOT / "tests" / "bayes")],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(r.stdout.strip().splitlines()[-1])


def agreement(ours: dict, theirs: list[dict], names: dict) -> float:
    rows = {r["variable"]: r for r in theirs}
    worst = 0.0
    for a, b in names.items():
        m, se = ours["summary"][a]
        r = rows[b]
        worst = max(worst, abs(m - r["mean"]) / (se**2 + r["mcse_mean"] ** 2) ** 0.5)
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    ours, brms = run_ours(), run_brms()
    print("| model | tool | wall (s) | min bulk ESS | ESS/s | divergences | max abs z vs brms |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name in NAMES:
        for label in ("first", "second"):
            o = ours[name][label]
            z = agreement(o, brms[name]["summary"], NAMES[name]) if brms else float("nan")
            what = "multilevel, first call" if label == "first" else "multilevel, compiled program reused"
            print(
                f"| {name} | {what} | {o['wall']:.1f} | {o['ess']:.0f} | {o['ess'] / o['wall']:.0f} | "
                f"{o['divergences']} | {z:.2f} |"
            )
        if brms:
            b = brms[name]
            ess = min(r["ess_bulk"] for r in b["summary"])
            tot = b["compile"] + b["sample"]
            print(f"| {name} | brms, compile + sampling | {tot:.1f} | {ess:.0f} | {ess / tot:.0f} | | |")
            print(
                f"| {name} | brms, sampling only | {b['sample']:.1f} | {ess:.0f} | {ess / b['sample']:.0f} | | |"
            )
    if args.json:
        args.json.write_text(json.dumps({"multilevel": ours, "brms": brms}, indent=1))


if __name__ == "__main__":
    main()
