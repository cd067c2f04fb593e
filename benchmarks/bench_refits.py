"""Refits, parametric bootstrap, many responses and the first call: multilevel against
`glmm` and lme4 (one Rscript call for all of lme4's warm work), side by side in one run.

1. First fit of sleepstudy in a fresh process: ``python -c "import pandas, multilevel;
   ...fit..."`` minus ``python -c "import pandas"`` (and the same for `glmm`), and the
   command line ``multilevel fit <csv> <formula>`` against ``Rscript -e`` loading lme4,
   reading the CSV, fitting and printing the summary; medians of alternated fresh
   processes.
2. Warm fit of sleepstudy, and ``fit.refit(y)`` against lme4's ``refit(m, y)``.
3. Parametric bootstrap of sleepstudy (REML, ``Reaction ~ Days + (Days | Subject)``):
   replicates per second against ``bootMer(type = "parametric")``, and multilevel's
   2.5/50/97.5% percentiles against ``../shared/reference/lme4_inference.json``
   (``sleepstudy_boot``, 2,000 replicates) as z-scores over both Monte Carlo errors.
4. The same for cbpp (binomial, Laplace), against ``tests/data/refits_refs.json``.
5. ``anova(m0, m1, test="PB")`` for the Days effect against pbkrtest's ``PBmodcomp``.
6. ``fit_many`` on many responses of one 60-row design (20 groups of 3, ``y ~ x + (1 | g)``)
   against lme4's ``refit`` loop and a `glmm` fit loop, with a check that 50 random
   responses equal their own ``multilevel.fit()`` in the REML criterion.

lme4's and `glmm`'s loops run fewer replicates or responses than multilevel; their rates
are extrapolated (the table says from how many). Where multilevel lacks a function (the
refit/bootstrap API is being written), its cells say so and the peers still run.

    python benchmarks/bench_refits.py [--quick] [--json out.json]
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from common import timed

import multilevel

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SRC = ROOT / "src"
DATASETS = SRC / "multilevel" / "datasets"
SLEEP_CSV = DATASETS / "sleepstudy.csv"
SLEEP = "Reaction ~ Days + (Days | Subject)"
SLEEP0 = "Reaction ~ 1 + (Days | Subject)"
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
MANY = "y ~ x + (1 | g)"
LME4_REF = ROOT.parent / "shared" / "reference" / "lme4_inference.json"
OWN_REF = ROOT / "tests" / "data" / "refits_refs.json"
GLMM_PYTHON = Path("/tmp/benchenv/bin/python")
REF_NOTES = {
    "sleepstudy_boot": "../shared/reference, lme4 1.1-31's bootMer as it is",
    "sleepstudy_boot_fixed": "tests/data, bootMer with refit's REML patched",
    "cbpp_boot": "tests/data",
}

# ---------------------------------------------------------------------------------------
# data


def many_responses(n_resp: int, seed: int = 14) -> tuple[pd.DataFrame, np.ndarray]:
    """The fit_many design (60 rows, 20 groups of 3, one normal covariate) and ``n_resp``
    responses ``1 + 0.5 x + b_g + e`` (b ~ N(0, 0.7^2), e ~ N(0, 1)), one per column.

    Group effects and residuals come from separate streams drawn response by response,
    so the first k responses are the same whatever ``n_resp`` is (quick and full runs,
    and the CSV that goes to R, share them)."""
    ss = np.random.SeedSequence(seed)
    s_x, s_b, s_e = (np.random.default_rng(s) for s in ss.spawn(3))
    g = np.repeat(np.arange(20), 3)
    x = s_x.standard_normal(60)
    b = 0.7 * s_b.standard_normal((n_resp, 20))
    e = s_e.standard_normal((n_resp, 60))
    y = 1.0 + 0.5 * x[None, :] + b[:, g] + e
    design = pd.DataFrame({"x": x, "g": pd.Categorical([f"g{i:02d}" for i in g])})
    return design, np.ascontiguousarray(y.T)


def response_names(n: int) -> list[str]:
    return [f"y{k:05d}" for k in range(1, n + 1)]


def load_refs() -> dict:
    refs: dict = {}
    for path in (LME4_REF, OWN_REF):
        if path.exists():
            refs.update(json.loads(path.read_text()))
        else:
            print(f"reference file missing: {path}", file=sys.stderr)
    return refs


# ---------------------------------------------------------------------------------------
# availability of the multilevel side


def missing(what: str) -> str:
    msg = f"multilevel: {what} is not available in this checkout; its cells are skipped"
    print(msg, file=sys.stderr)
    return msg


def has_param(fn, name: str) -> bool:
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return True
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def quiet(fn, *a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*a, **k)


# ---------------------------------------------------------------------------------------
# 1. first fit in a fresh process


def py_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), *filter(None, [env.get("PYTHONPATH")])])
    return env


def glmm_python() -> str | None:
    """A Python that imports `glmm`: this one, else the benchmark venv's."""
    for exe in (sys.executable, str(GLMM_PYTHON)):
        if Path(exe).exists():
            r = subprocess.run([exe, "-c", "import glmm"], capture_output=True)
            if r.returncode == 0:
                return exe
    return None


def cli_command() -> list[str]:
    """The ``multilevel`` console script next to this interpreter (not a pyenv shim, whose
    own start-up would be timed), else ``python -m multilevel.cli``."""
    for cand in (Path(sys.executable).parent / "multilevel", Path(sys.base_prefix) / "bin" / "multilevel"):
        if cand.exists():
            return [str(cand)]
    return [sys.executable, "-m", "multilevel.cli"]


def wall(cmd: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:3])} ... failed: {r.stderr[-400:]}")
    return dt


def first_fit(reps: int) -> dict:
    csv = str(SLEEP_CSV)
    env = py_env()
    read = f"d = pandas.read_csv({csv!r})"
    jobs: dict[str, list[str]] = {
        "py_base": [sys.executable, "-c", "import pandas"],
        "multilevel": [
            sys.executable,
            "-c",
            f"import pandas, multilevel; {read}; multilevel.fit({SLEEP!r}, d)",
        ],
    }
    gp = glmm_python()
    if gp:
        jobs["glmm_base"] = [gp, "-c", "import pandas"]
        jobs["glmm"] = [gp, "-c", f"import pandas, glmm; {read}; glmm.fit(d, {SLEEP!r})"]
    else:
        print("glmm not importable here or in /tmp/benchenv: its first fit is skipped", file=sys.stderr)
    jobs["cli"] = [*cli_command(), "fit", csv, SLEEP]
    has_r = shutil.which("Rscript") is not None
    if has_r:
        jobs["rscript"] = [
            "Rscript",
            "-e",
            f"suppressMessages(library(lme4)); d <- read.csv({csv!r}); d$Subject <- factor(d$Subject); "
            f"m <- lmer({SLEEP}, d); print(summary(m))",
        ]
    times: dict[str, list[float]] = {k: [] for k in jobs}
    for _ in range(reps):  # alternated: base, fit, base, fit, ... in every round
        for name, cmd in jobs.items():
            try:
                times[name].append(wall(cmd, env))
            except RuntimeError as exc:
                print(exc, file=sys.stderr)
    med = {k: statistics.median(v) for k, v in times.items() if v}
    out = {"reps": reps, "medians": med, "cli": " ".join(jobs["cli"][:1])}
    if "multilevel" in med:
        out["multilevel_minus_pandas"] = med["multilevel"] - med["py_base"]
    if "glmm" in med:
        out["glmm_minus_pandas"] = med["glmm"] - med["glmm_base"]
    return out


# ---------------------------------------------------------------------------------------
# the glmm peer (in its own interpreter when this one lacks it)

GLMM_SCRIPT = r"""
import json, sys, time, statistics, warnings
import numpy as np, pandas as pd, glmm
cfg = json.loads(sys.argv[1])
warnings.simplefilter("ignore")
d = pd.read_csv(cfg["sleepstudy"])
glmm.fit(d, cfg["formula"])
ts = []
for _ in range(cfg["reps"]):
    t0 = time.perf_counter(); m = glmm.fit(d, cfg["formula"]); ts.append(time.perf_counter() - t0)
out = {"warm_fit": statistics.median(ts), "criterion": -2 * float(m.loglik)}
many = pd.read_csv(cfg["many"])
cols = [c for c in many.columns if c.startswith("y")]
base = many[["x", "g"]].copy()
t0 = time.perf_counter()
crit = []
for c in cols:
    crit.append(-2 * float(glmm.fit(base.assign(y=many[c].to_numpy()), cfg["many_formula"]).loglik))
out["many_seconds"] = time.perf_counter() - t0
out["many_n"] = len(cols)
out["many_criterion"] = crit
print(json.dumps(out))
"""


def run_glmm(reps: int, many_csv: Path) -> dict | None:
    gp = glmm_python()
    if gp is None:
        return None
    cfg = {
        "sleepstudy": str(SLEEP_CSV),
        "formula": SLEEP,
        "reps": reps,
        "many": str(many_csv),
        "many_formula": MANY,
    }
    r = subprocess.run([gp, "-c", GLMM_SCRIPT, json.dumps(cfg)], capture_output=True, text=True)
    if r.returncode != 0:
        print("glmm run failed:", r.stderr[-600:], file=sys.stderr)
        return None
    return json.loads(r.stdout)


# ---------------------------------------------------------------------------------------
# lme4 and pbkrtest: everything warm in one Rscript call

R_SCRIPT = r"""
suppressMessages({library(lme4); library(pbkrtest); library(jsonlite)})
cfg <- fromJSON(commandArgs(TRUE)[1])
# lme4 1.1-31's refit() (so bootMer) gives a REML fit REML = 1 where lmer() uses p (see
# tests/data/refits_refs.R); patched to lmer()'s value, which costs nothing in time
fix_refit <- function() {
  f <- lme4:::refit.merMod
  b <- deparse(body(f), width.cutoff = 500L)
  b2 <- sub("REML = isREML(object)", "REML = if (isREML(object)) ncol(getME(object, \"X\")) else 0L",
            b, fixed = TRUE)
  if (identical(b, b2)) return(FALSE)
  body(f) <- parse(text = b2)[[1]]
  environment(f) <- asNamespace("lme4")
  assignInNamespace("refit.merMod", f, "lme4")
  TRUE
}
out <- list(refit_patched = fix_refit())
el <- function(expr) system.time(expr)[["elapsed"]]
fun <- function(x) c(fixef(x), sd = as.data.frame(VarCorr(x))$sdcor)
sl <- read.csv(cfg$sleepstudy); sl$Subject <- factor(sl$Subject)
f1 <- Reaction ~ Days + (Days | Subject)
m1 <- lmer(f1, sl)
ts <- replicate(cfg$reps, el(lmer(f1, sl)))
out$warm_fit <- list(seconds = median(ts), criterion = REMLcrit(m1))
newy <- as.numeric(cfg$newy)
ts <- replicate(cfg$reps, el(refit(m1, newy)))
out$refit <- list(seconds = median(ts), criterion = REMLcrit(refit(m1, newy)))
s <- el(b <- suppressMessages(suppressWarnings(
  bootMer(m1, fun, nsim = cfg$boot_nsim, seed = 1, type = "parametric"))))
out$boot_sleepstudy <- list(nsim = cfg$boot_nsim, seconds = s, stats = colnames(b$t), t = unname(b$t))
cb <- read.csv(cfg$cbpp); cb$herd <- factor(cb$herd); cb$period <- factor(cb$period)
mc <- glmer(cbind(incidence, size - incidence) ~ period + (1 | herd), cb, family = binomial)
s <- el(b <- suppressMessages(suppressWarnings(
  bootMer(mc, fun, nsim = cfg$cbpp_nsim, seed = 1, type = "parametric"))))
out$boot_cbpp <- list(nsim = cfg$cbpp_nsim, seconds = s, stats = colnames(b$t), t = unname(b$t))
m0 <- lmer(Reaction ~ 1 + (Days | Subject), sl)
set.seed(1)
s <- el(pb <- suppressMessages(suppressWarnings(PBmodcomp(m1, m0, nsim = cfg$pb_nsim))))
out$pb <- list(nsim = cfg$pb_nsim, seconds = s, stat = pb$test["LRT", "stat"],
               p_PB = pb$test["PBtest", "p.value"], p_chisq = pb$test["LRT", "p.value"])
d <- read.csv(cfg$many); d$g <- factor(d$g)
Y <- as.matrix(d[, grep("^y", names(d)), drop = FALSE])
d$y <- Y[, 1]
mm <- lmer(y ~ x + (1 | g), d)
crit <- numeric(ncol(Y))
s <- el(suppressMessages(for (k in seq_len(ncol(Y))) crit[k] <- REMLcrit(refit(mm, Y[, k]))))
out$many <- list(n = ncol(Y), seconds = s, criterion = crit)
cat(toJSON(out, auto_unbox = TRUE, digits = NA))
"""


def run_lme4(cfg: dict) -> dict | None:
    if not shutil.which("Rscript"):
        print("Rscript not found: the lme4 cells are skipped", file=sys.stderr)
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".R", delete=False) as fh:
        fh.write(R_SCRIPT)
    r = subprocess.run(["Rscript", fh.name, json.dumps(cfg)], capture_output=True, text=True)
    Path(fh.name).unlink()
    if r.returncode != 0:
        print("lme4 run failed:", r.stderr[-800:], file=sys.stderr)
        return None
    return json.loads(r.stdout)


# ---------------------------------------------------------------------------------------
# Monte Carlo error of bootstrap quantiles


def quantile_se(x: np.ndarray, p: float, n: int, sd: float) -> float:
    """Standard error of the p-quantile of ``n`` draws from the law of ``x``:
    sqrt(p (1 - p) / n) / f(q_p). With 500 draws or more in ``x``, 1 / f(q_p) is the
    difference quotient of the empirical quantile function over p +- h (Siddiqui's
    estimate, h = min(0.4 p, 0.4 (1 - p), 0.05)); with fewer (lme4's short runs here) it is
    the normal density's with standard deviation ``sd`` (the reference's)."""
    x = np.asarray(x, float)
    if len(x) >= 500:
        h = min(0.4 * p, 0.4 * (1 - p), 0.05)
        lo, hi = np.quantile(x, [p - h, p + h])
        sparsity = (hi - lo) / (2 * h)
    else:
        z = stats_norm_ppf(p)
        sparsity = sd * np.sqrt(2 * np.pi) * np.exp(z * z / 2)
    return float(sparsity * np.sqrt(p * (1 - p) / n))


def stats_norm_ppf(p: float) -> float:
    from scipy.special import ndtri

    return float(ndtri(p))


def compare_quantiles(reps: np.ndarray, ref: dict, names: list[str]) -> list[dict]:
    """Per statistic (by position, as lme4's ``c(fixef(x), sdcor)``): our 2.5/50/97.5%
    percentiles, the reference's, and z = difference / sqrt(SE_ours^2 + SE_ref^2), both
    SEs from one density estimate (``quantile_se``), each with its own number of draws."""
    rows = []
    n_ref = int(ref["nsim"])
    k = min(reps.shape[1], len(ref["q50"]))
    if reps.shape[1] != len(ref["q50"]):
        print(
            f"bootstrap: {reps.shape[1]} statistics here, {len(ref['q50'])} in the reference; "
            f"the first {k} are compared by position",
            file=sys.stderr,
        )
    for j in range(k):
        x = reps[:, j]
        x = x[np.isfinite(x)]
        row = {"stat": names[j], "ref_stat": ref["stats"][j]}
        for p, key in ((0.025, "q025"), (0.5, "q50"), (0.975, "q975")):
            ours = float(np.quantile(x, p))
            sd_ref = ref["sd"][j]
            se = np.hypot(quantile_se(x, p, len(x), sd_ref), quantile_se(x, p, n_ref, sd_ref))
            row[key] = ours
            row[key + "_ref"] = ref[key][j]
            row[key + "_z"] = (ours - ref[key][j]) / se if se > 0 else float("nan")
        sd = float(np.std(x, ddof=1))
        row["sd"] = sd
        row["sd_ref"] = ref["sd"][j]
        row["mean_z"] = (float(np.mean(x)) - ref["mean"][j]) / (sd * np.sqrt(1 / len(x) + 1 / n_ref))
        rows.append(row)
    return rows


def print_quantiles(title: str, rows: list[dict]) -> None:
    print(f"\n{title}")
    print("\n| statistic | 2.5% | ref | z | 50% | ref | z | 97.5% | ref | z | mean z | sd / ref sd |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        cells = " | ".join(
            f"{r[k]:.4g} | {r[k + '_ref']:.4g} | {r[k + '_z']:+.2f}" for k in ("q025", "q50", "q975")
        )
        print(f"| {r['stat']} | {cells} | {r['mean_z']:+.2f} | {r['sd'] / r['sd_ref']:.3f} |")
    zs = [abs(r[k]) for r in rows for k in ("q025_z", "q50_z", "q975_z")]
    print(f"\nlargest |z| over the {len(zs)} percentiles: {max(zs):.2f}")


# ---------------------------------------------------------------------------------------
# multilevel: warm fit, refits, bootstrap, PB test, fit_many


def ml_warm(reps: int) -> dict:
    d = multilevel.load_dataset("sleepstudy")
    quiet(multilevel.fit, SLEEP, d)
    t, m = timed(lambda: quiet(multilevel.fit, SLEEP, d), reps)
    return {"seconds": t, "criterion": float(m.reml_criterion)}


def ml_refit(reps: int, refs: dict) -> dict:
    m = quiet(multilevel.fit, SLEEP, multilevel.load_dataset("sleepstudy"))
    if not hasattr(m, "refit"):
        return {"skipped": missing("fit.refit")}
    ref = refs.get("sleepstudy_refit")
    newy = np.asarray(ref["newy"], float) if ref else np.asarray(m.simulate(1, seed=1)).ravel()
    quiet(m.refit, newy)
    t, r = timed(lambda: quiet(m.refit, newy), reps)
    out = {"seconds": t, "criterion": float(r.reml_criterion)}
    if ref:
        out["criterion_ref"] = ref["REMLcrit"]
        out["criterion_rel_diff"] = (out["criterion"] - ref["REMLcrit"]) / ref["REMLcrit"]
    c = quiet(multilevel.fit, CBPP, multilevel.load_dataset("cbpp"), family="binomial")
    cref = refs.get("cbpp_refit")
    if cref:
        inc = np.asarray(cref["incidence"], float)
        size = np.asarray(cref["size"], float)
        for label, y in (
            ("two-column matrix", np.column_stack([inc, size - inc])),
            ("incidence counts", inc),
        ):
            try:
                rc = quiet(c.refit, y)
            except Exception as exc:
                print(f"cbpp refit with the {label} failed: {exc}", file=sys.stderr)
                continue
            out["cbpp"] = {
                "response": label,
                "loglik": float(rc.loglik),
                "loglik_ref_tight": cref["tight_logLik"],
                "loglik_ref_default": cref["logLik"],
            }
            break
    return out


def bootstrap_rate(fit, n: int, seed: int) -> dict:
    quiet(multilevel.bootstrap, fit, 20, seed=seed + 1)  # first-use costs out of the timing
    t0 = time.perf_counter()
    b = quiet(multilevel.bootstrap, fit, n, seed=seed)
    secs = time.perf_counter() - t0
    reps = b.replicates
    out = {
        "n": n,
        "seconds": secs,
        "per_second": n / secs,
        "columns": [str(c) for c in reps.columns],
        "n_failed": int(getattr(b, "n_failed", -1)),
        "n_singular": int(getattr(b, "n_singular", -1)),
        "replicates": reps.to_numpy(float),
    }
    try:
        out["confint_perc"] = b.confint(level=0.95, method="perc").to_dict()
    except Exception as exc:
        print(f"bootstrap confint failed: {exc}", file=sys.stderr)
    return out


def ml_boot_sleepstudy(n: int) -> dict:
    if not hasattr(multilevel, "bootstrap"):
        return {"skipped": missing("multilevel.bootstrap")}
    m = quiet(multilevel.fit, SLEEP, multilevel.load_dataset("sleepstudy"))
    return bootstrap_rate(m, n, seed=1)


def ml_boot_cbpp(n: int) -> dict:
    if not hasattr(multilevel, "bootstrap"):
        return {"skipped": missing("multilevel.bootstrap")}
    m = quiet(multilevel.fit, CBPP, multilevel.load_dataset("cbpp"), family="binomial")
    return bootstrap_rate(m, n, seed=2)


def as_frame(table) -> pd.DataFrame | None:
    if isinstance(table, pd.DataFrame):
        return table
    for attr in ("to_pandas", "to_frame", "frame", "table"):
        v = getattr(table, attr, None)
        v = v() if callable(v) else v
        if isinstance(v, pd.DataFrame):
            return v
    return None


def pb_pvalue(table) -> float | None:
    """The PB p-value of the larger model's row: the last finite value of the first column
    whose name mentions PB or bootstrap."""
    df = as_frame(table)
    if df is None:
        return None
    for col in df.columns:
        name = str(col).lower()
        if "pb" in name or "boot" in name:
            vals = pd.to_numeric(df[col], errors="coerce").dropna()
            if len(vals):
                return float(vals.iloc[-1])
    return None


def ml_pb(n: int) -> dict:
    if not has_param(multilevel.anova, "test"):
        return {"skipped": missing('multilevel.anova(m0, m1, test="PB")')}
    d = multilevel.load_dataset("sleepstudy")
    m0, m1 = quiet(multilevel.fit, SLEEP0, d), quiet(multilevel.fit, SLEEP, d)
    quiet(multilevel.anova, m0, m1, test="PB", n=20, seed=2)
    t0 = time.perf_counter()
    table = quiet(multilevel.anova, m0, m1, test="PB", n=n, seed=1)
    secs = time.perf_counter() - t0
    p = pb_pvalue(table)
    if p is None:
        print("anova(test='PB'): no column named like PB/bootstrap; the table was:\n", table, file=sys.stderr)
    return {"n": n, "seconds": secs, "per_second": n / secs, "p_PB": p, "table": str(table)}


CRIT_NAMES = ("reml_criterion", "remlcrit", "reml_crit", "criterion", "objective", "deviance")
RESP_NAMES = ("response", "resp", "response_id", "outcome", "y")


def find_col(df: pd.DataFrame, wanted: tuple[str, ...]) -> str | None:
    low = {str(c).lower(): c for c in df.columns}
    for w in wanted:
        if w in low:
            return low[w]
    for c in df.columns:
        if "reml" in str(c).lower() and "crit" in str(c).lower() and wanted is CRIT_NAMES:
            return c
    return None


def many_criteria(df: pd.DataFrame, names: list[str]) -> np.ndarray | None:
    """One REML criterion per response, in order, from fit_many's tidy frame (long or
    wide, the response named by a column or the index, by name or by position)."""
    crit = find_col(df, CRIT_NAMES)
    if crit is None:
        print(f"fit_many: no REML criterion column among {list(df.columns)}", file=sys.stderr)
        return None
    resp = find_col(df, RESP_NAMES)
    key = df[resp] if resp is not None else pd.Series(df.index, index=df.index)
    first = pd.to_numeric(df[crit], errors="coerce").groupby(key.to_numpy(), sort=False).first()
    if set(names) <= set(map(str, first.index)):
        first.index = first.index.map(str)
        return first.reindex(names).to_numpy(float)
    if len(first) == len(names):
        try:
            return first.sort_index().to_numpy(float)
        except TypeError:
            return first.to_numpy(float)
    print(
        f"fit_many: cannot tell the responses apart ({len(first)} keys, {len(names)} responses)",
        file=sys.stderr,
    )
    return None


def call_fit_many(design: pd.DataFrame, y: np.ndarray, names: list[str]):
    frame = pd.DataFrame(y, columns=names)
    try:
        return quiet(multilevel.fit_many, MANY, design, frame), "DataFrame"
    except (TypeError, ValueError) as exc:
        print(f"fit_many with a DataFrame of responses failed ({exc}); trying an array", file=sys.stderr)
        return quiet(multilevel.fit_many, MANY, design, y), "array"


def ml_many(design: pd.DataFrame, y: np.ndarray, n_check: int) -> dict:
    if not hasattr(multilevel, "fit_many"):
        return {"skipped": missing("multilevel.fit_many")}
    names = response_names(y.shape[1])
    call_fit_many(design, y[:, :50], names[:50])  # first-use costs out of the timing
    t0 = time.perf_counter()
    out, how = call_fit_many(design, y, names)
    secs = time.perf_counter() - t0
    res = {"n": y.shape[1], "seconds": secs, "per_second": y.shape[1] / secs, "responses_as": how}
    res["columns"] = [str(c) for c in out.columns] if isinstance(out, pd.DataFrame) else None
    crit = many_criteria(out, names) if isinstance(out, pd.DataFrame) else None
    res["criterion"] = crit
    for flag in ("converged", "singular"):
        col = find_col(out, (flag, f"is_{flag}")) if isinstance(out, pd.DataFrame) else None
        if col is not None:
            res[f"n_{flag}"] = int(out.groupby(find_col(out, RESP_NAMES) or out.index)[col].first().sum())
    # the check: random responses against their own fit()
    rng = np.random.default_rng(0)
    pick = rng.choice(y.shape[1], size=min(n_check, y.shape[1]), replace=False)
    own = np.array([quiet(multilevel.fit, MANY, design.assign(y=y[:, k])).reml_criterion for k in pick])
    res["check_n"] = len(pick)
    if crit is None:
        res["check"] = "unavailable: no REML criterion per response in fit_many's frame"
        print(f"fit_many check {res['check']}", file=sys.stderr)
    else:
        rel = np.abs(crit[pick] - own) / np.abs(own)
        res["check_max_rel"] = float(np.nanmax(rel))
        res["check_pass"] = bool(np.all(rel <= 1e-8))
    # context: the plain loops multilevel users would write instead
    k_loop = min(200, y.shape[1])
    t0 = time.perf_counter()
    for k in range(k_loop):
        quiet(multilevel.fit, MANY, design.assign(y=y[:, k]))
    res["fit_loop_per_second"] = k_loop / (time.perf_counter() - t0)
    m = quiet(multilevel.fit, MANY, design.assign(y=y[:, 0]))
    if hasattr(m, "refit"):
        t0 = time.perf_counter()
        for k in range(k_loop):
            quiet(m.refit, y[:, k])
        res["refit_loop_per_second"] = k_loop / (time.perf_counter() - t0)
    return res


# ---------------------------------------------------------------------------------------
# report


def fmt(v: float | None, digits: int = 4) -> str:
    if v is None:
        return "n/a"
    return f"{v:.{digits}g}"


def speedup(ml: float | None, peer: float | None, higher_better: bool) -> str:
    if ml is None or peer is None:
        return ""
    return f"{(ml / peer if higher_better else peer / ml):.1f}x"


def table(rows: list[tuple[str, float | None, float | None, float | None, bool, str]]) -> None:
    print("\nSpeed-up columns: how many times faster multilevel is than the peer (>1: faster).\n")
    print("| measure | multilevel | glmm | lme4 | vs glmm | vs lme4 | note |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, ml, gl, r, hb, note in rows:
        print(
            f"| {name} | {fmt(ml)} | {fmt(gl)} | {fmt(r)} | {speedup(ml, gl, hb)} | "
            f"{speedup(ml, r, hb)} | {note} |"
        )


def get(d: dict | None, *keys):
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items() if k != "replicates"}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        return None if not np.isfinite(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small counts, for a check of the harness")
    ap.add_argument("--json", default=None, help="default benchmarks/refits_results[_quick].json")
    args = ap.parse_args()
    q = args.quick
    n = {
        "first_reps": 7,
        "warm_reps": 21 if q else 51,
        "boot": 200 if q else 2000,
        "boot_cbpp": 100 if q else 1000,
        "pb": 100 if q else 1000,
        "many": 2000 if q else 20000,
        "many_check": 50,
        "r_boot": 50 if q else 200,
        "r_cbpp": 30 if q else 100,
        "r_pb": 50 if q else 300,
        "r_many": 100 if q else 300,
        "glmm_many": 500 if q else 2000,
    }
    refs = load_refs()
    results: dict = {"quick": q, "counts": n, "python": sys.version.split()[0]}

    print("1. first fit in fresh processes ...", file=sys.stderr)
    results["first_fit"] = first_fit(n["first_reps"])

    design, y = many_responses(n["many"])
    names = response_names(n["many"])
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for who, k in (("r", n["r_many"]), ("glmm", n["glmm_many"])):
            paths[who] = Path(tmp) / f"many_{who}.csv"
            frame = pd.concat([design, pd.DataFrame(y[:, :k], columns=names[:k])], axis=1)
            frame.to_csv(paths[who], index=False, float_format="%.17g")
        print("lme4 (one Rscript call) ...", file=sys.stderr)
        newy = get(refs, "sleepstudy_refit", "newy")
        results["lme4"] = run_lme4(
            {
                "sleepstudy": str(SLEEP_CSV),
                "cbpp": str(DATASETS / "cbpp.csv"),
                "many": str(paths["r"]),
                "reps": n["warm_reps"],
                "newy": newy if newy is not None else [],
                "boot_nsim": n["r_boot"],
                "cbpp_nsim": n["r_cbpp"],
                "pb_nsim": n["r_pb"],
            }
        )
        print("glmm ...", file=sys.stderr)
        results["glmm"] = run_glmm(n["warm_reps"] * 4, paths["glmm"])

    print("multilevel ...", file=sys.stderr)
    sections = {
        "warm": lambda: ml_warm(n["warm_reps"]),
        "refit": lambda: ml_refit(n["warm_reps"], refs),
        "boot_sleepstudy": lambda: ml_boot_sleepstudy(n["boot"]),
        "boot_cbpp": lambda: ml_boot_cbpp(n["boot_cbpp"]),
        "pb": lambda: ml_pb(n["pb"]),
        "many": lambda: ml_many(design, y, n["many_check"]),
    }
    ml: dict = {}
    for key, go in sections.items():
        try:
            ml[key] = go()
        except Exception as exc:  # a failure is a result, not a crash
            print(f"multilevel {key} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
            ml[key] = {"failed": f"{type(exc).__name__}: {exc}"}
    results["multilevel"] = ml

    report(results, refs, n)
    out = (
        Path(args.json) if args.json else HERE / ("refits_results_quick.json" if q else "refits_results.json")
    )
    out.write_text(json.dumps(jsonable(results), indent=2) + "\n")
    print(f"\nwritten {out}", file=sys.stderr)


def rate(d: dict | None, n_key: str = "nsim") -> float | None:
    if not d or "seconds" not in d or d["seconds"] <= 0:
        return None
    return d[n_key] / d["seconds"]


def report(results: dict, refs: dict, n: dict) -> None:
    ff, r, g, ml = results["first_fit"], results["lme4"], results["glmm"], results["multilevel"]
    med = ff["medians"]
    rows = [
        (
            "first fit, fresh process, minus `import pandas` (s)",
            ff.get("multilevel_minus_pandas"),
            ff.get("glmm_minus_pandas"),
            None,
            False,
            f"medians of {ff['reps']} alternated processes",
        ),
        (
            "command line: `multilevel fit` vs `Rscript -e` lme4 (s)",
            med.get("cli"),
            None,
            med.get("rscript"),
            False,
            "whole process: start, load, read CSV, fit, print summary",
        ),
        (
            "warm fit, sleepstudy (ms)",
            1e3 * ml["warm"]["seconds"] if "seconds" in ml["warm"] else None,
            1e3 * g["warm_fit"] if g else None,
            1e3 * r["warm_fit"]["seconds"] if r else None,
            False,
            f"median of {n['warm_reps']} ({4 * n['warm_reps']} for glmm)",
        ),
        (
            "refit, sleepstudy, new response (ms)",
            1e3 * ml["refit"]["seconds"] if "seconds" in ml["refit"] else None,
            None,
            1e3 * r["refit"]["seconds"] if r else None,
            False,
            "lme4 `refit(m, newy)` with its REML argument patched (tests/data/refits_refs.R)",
        ),
        (
            "parametric bootstrap, sleepstudy (replicates/s)",
            get(ml, "boot_sleepstudy", "per_second"),
            None,
            rate(get(r, "boot_sleepstudy")),
            True,
            f"multilevel n={n['boot']}; lme4 bootMer nsim={n['r_boot']}, rate extrapolated",
        ),
        (
            "parametric bootstrap, cbpp Laplace (replicates/s)",
            get(ml, "boot_cbpp", "per_second"),
            None,
            rate(get(r, "boot_cbpp")),
            True,
            f"multilevel n={n['boot_cbpp']}; lme4 bootMer nsim={n['r_cbpp']}",
        ),
        (
            "PB test of Days, sleepstudy (simulations/s)",
            get(ml, "pb", "per_second"),
            None,
            rate(get(r, "pb")),
            True,
            f"multilevel n={n['pb']}; pbkrtest PBmodcomp nsim={n['r_pb']} (two refits each)",
        ),
        (
            "fit_many, 60 rows, 20 groups (responses/s)",
            get(ml, "many", "per_second"),
            rate(g, "many_n") if g else None,
            rate(get(r, "many"), "n"),
            True,
            f"multilevel {n['many']} responses; glmm fit loop {n['glmm_many']}; "
            f"lme4 refit loop {n['r_many']}; rates extrapolated",
        ),
    ]
    table(rows)
    print(
        "\nfresh-process medians (s): "
        + ", ".join(f"{k} {v:.3f}" for k, v in med.items())
        + f"; the command line ran as `{ff['cli']}`"
    )
    for key, what in (("boot_sleepstudy", 2000), ("boot_cbpp", 1000)):
        lme4_rate = rate(get(r, key))
        if lme4_rate:
            print(f"\nlme4 {key}: {what} replicates would take {what / lme4_rate:.0f} s at its measured rate")
    for key, label in ml.items():
        if isinstance(label, dict) and ("skipped" in label or "failed" in label):
            print(f"\nmultilevel {key}: {label.get('skipped') or 'failed: ' + label['failed']}")

    # percentiles against the references
    for key, ref_keys, title in (
        (
            "boot_sleepstudy",
            ("sleepstudy_boot", "sleepstudy_boot_fixed"),
            "Bootstrap percentiles, sleepstudy REML",
        ),
        ("boot_cbpp", ("cbpp_boot",), "Bootstrap percentiles, cbpp Laplace"),
    ):
        mine = ml.get(key, {})
        for ref_key in ref_keys:
            ref = refs.get(ref_key)
            if ref is None or "replicates" not in mine:
                continue
            rows_q = compare_quantiles(mine["replicates"], ref, mine["columns"])
            mine[f"quantiles_vs_{ref_key}"] = rows_q
            print_quantiles(
                f"{title}: multilevel (n={mine['n']}) vs lme4's `{ref_key}` ({REF_NOTES[ref_key]}, "
                f"nsim={ref['nsim']})",
                rows_q,
            )
        if "replicates" in mine:
            print(f"failed replicates: {mine['n_failed']}, singular: {mine['n_singular']}")
        rb, ref = get(r, key), refs.get(ref_keys[-1])
        if rb and rb.get("t") and ref:
            t = np.asarray(rb["t"], float)
            rows_q = compare_quantiles(t, ref, [str(s) for s in rb["stats"]])
            rb["quantiles"] = rows_q
            print_quantiles(
                f"{title}: lme4 in this run (nsim={rb['nsim']}) vs `{ref_keys[-1]}` (a check of the harness)",
                rows_q,
            )
        if rb:
            rb.pop("t", None)

    # PB p-values
    print("\n| PB test of Days (sleepstudy) | draws | LRT statistic | PB p-value | seconds |")
    print("|---|---:|---:|---:|---:|")
    ref = refs.get("sleepstudy_pb_days")
    if ref:
        print(
            f"| pbkrtest reference | {ref['nsim']} | {ref['LRT_stat']:.6f} | {ref['p_PB']:.6g} | "
            f"{ref['seconds']:.1f} |"
        )
    if get(r, "pb"):
        p = r["pb"]
        print(
            f"| pbkrtest, this run | {p['nsim']} | {p['stat']:.6f} | {p['p_PB']:.6g} | {p['seconds']:.2f} |"
        )
    p = ml.get("pb", {})
    if "seconds" in p:
        print(f"| multilevel | {p['n']} | | {fmt(p['p_PB'], 6)} | {p['seconds']:.2f} |")
        print(f"\nmultilevel's table:\n{p['table']}")
    if ref:
        print(
            "(floor of a PB p-value from n draws: 1 / (n + 1); "
            f"the observed LRT {ref['LRT_stat']:.2f} is never reached)"
        )

    # refit and fit_many checks
    rf = ml.get("refit", {})
    if "criterion_rel_diff" in rf:
        print(
            f"\nrefit sleepstudy: REML criterion {rf['criterion']:.8f}, lme4's {rf['criterion_ref']:.8f} "
            f"(relative {rf['criterion_rel_diff']:+.2e})"
        )
    if "cbpp" in rf:
        c = rf["cbpp"]
        print(
            f"refit cbpp ({c['response']}): logLik {c['loglik']:.8f}, "
            f"lme4 tight {c['loglik_ref_tight']:.8f}, "
            f"default {c['loglik_ref_default']:.8f}"
        )
    mm = ml.get("many", {})
    if "n" in mm:
        print(
            f"\nfit_many: {mm['n']} responses in {mm['seconds']:.2f} s "
            f"(responses passed as {mm['responses_as']}); "
            f"a loop of fit(): {mm['fit_loop_per_second']:.0f}/s"
            + (
                f", a loop of refit(): {mm['refit_loop_per_second']:.0f}/s"
                if "refit_loop_per_second" in mm
                else ""
            )
        )
        print(f"fit_many's columns: {mm['columns']}")
        if "check_max_rel" in mm:
            verdict = "PASS" if mm["check_pass"] else "FAIL"
            print(
                f"check, {mm['check_n']} random responses against their own fit(): largest relative "
                f"difference of the REML criterion {mm['check_max_rel']:.2e} ({verdict}, bound 1e-8)"
            )
        else:
            print(f"check: {mm.get('check')}")
        if mm.get("criterion") is not None and get(r, "many"):
            k = r["many"]["n"]
            theirs = np.asarray(r["many"]["criterion"], float)
            diff = (np.asarray(mm["criterion"][:k]) - theirs) / np.abs(theirs)
            print(
                f"against lme4's refit loop on the first {k} responses: "
                "REML criterion (ours - lme4's) / lme4's "
                f"from {diff.min():+.2e} to {diff.max():+.2e}"
            )
    if get(r, "many"):
        r["many"].pop("criterion", None)
    if g:
        g.pop("many_criterion", None)


if __name__ == "__main__":
    main()
