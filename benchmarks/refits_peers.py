"""The peers of the refit benchmark: fresh-process first fits, the Rust `glmm` package,
and lme4 / pbkrtest in one Rscript call."""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from refits_common import GLMM_PYTHON, MANY, SLEEP, SLEEP_CSV, SRC


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


GLMM_SCRIPT = r"""
import json, sys, time, statistics, warnings
import numpy as np, pandas as pd, glmm
cfg = json.loads(sys.argv[1])
warnings.simplefilter("ignore")
d = pd.read_csv(cfg["sleepstudy"])
out = {}
# the frame as read (integer Subject), then with Subject a categorical of strings
dc = d.assign(Subject=d["Subject"].astype(str).astype("category"))
frames = {"warm_fit": d, "warm_fit_categorical": dc}
for key, frame in frames.items():
    for _ in range(20):
        m = glmm.fit(frame, cfg["formula"])
    ts = []
    for _ in range(cfg["reps"]):
        t0 = time.perf_counter(); m = glmm.fit(frame, cfg["formula"]); ts.append(time.perf_counter() - t0)
    out[key] = statistics.median(ts)
out["criterion"] = -2 * float(m.loglik)
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
