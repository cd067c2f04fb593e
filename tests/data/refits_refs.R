# Reference numbers for refits, parametric bootstrap and the parametric-bootstrap
# likelihood-ratio test (tests/data/refits_refs.json). R 4.2, lme4 1.1-31, pbkrtest 0.5.2;
# run from the repository root (about 3 minutes on a 2-core machine):
#   Rscript tests/data/refits_refs.R > tests/data/refits_refs.json
# An optional argument names the folder with sleepstudy.csv and cbpp.csv
# (default src/multilevel/datasets).
suppressMessages({library(lme4); library(pbkrtest); library(jsonlite)})
args <- commandArgs(TRUE)
dir <- if (length(args)) args[1] else "src/multilevel/datasets"
sl <- read.csv(file.path(dir, "sleepstudy.csv")); sl$Subject <- factor(sl$Subject)
cb <- read.csv(file.path(dir, "cbpp.csv"))
cb$herd <- factor(cb$herd); cb$period <- factor(cb$period)
out <- list(versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                            pbkrtest = as.character(packageVersion("pbkrtest"))))
elapsed <- function(expr) system.time(expr)[["elapsed"]]

# lme4 1.1-31's refit() (and so bootMer(), which refits every replicate) rebuilds the
# response module of a REML fit with `REML = isREML(object)`, that is REML = 1, where lmer()
# uses the number of fixed-effect columns p: with p > 1 the refitted REML criterion is
# wrong (sleepstudy refitted to its own response: 1751.947 instead of 1743.628) and so are
# the replicates' variance components (sigma is pwrss-based with n - 1 in place of n - p).
# ML refits (pbkrtest refits by ML) and GLMMs are not affected. fix_refit() patches that
# one argument to lmer()'s value; the entries say which refit they used.
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

# pbkrtest's PBmodcomp refits REML fits by ML, simulates from the smaller model and refits
# both models to each simulated response; its `seed` argument is not used for lmer fits,
# so the seed is set before. p = (1 + #{simulated LRT > observed}) / (1 + #{simulated > 0}).
pb_case <- function(f0, f1, nsim, seed) {
  m0 <- lmer(as.formula(f0), sl); m1 <- lmer(as.formula(f1), sl)
  set.seed(seed)
  secs <- elapsed(pb <- suppressMessages(PBmodcomp(m1, m0, nsim = nsim)))
  list(formulas = c(f0, f1), REML = TRUE, refit_ML = TRUE, nsim = nsim, seed = seed,
       set_seed_before = TRUE, LRT_stat = pb$test["LRT", "stat"], df = pb$test["LRT", "df"],
       p_chisq = pb$test["LRT", "p.value"], p_PB = pb$test["PBtest", "p.value"],
       n_extreme = pb$n.extreme, npos = unname(pb$samples["npos"]), seconds = secs)
}
out$sleepstudy_pb_days <- pb_case("Reaction ~ 1 + (Days|Subject)", "Reaction ~ Days + (Days|Subject)",
                                  nsim = 2000, seed = 20261)
# a second, less lopsided test (p near 0.2): the Days effect gives p at its floor 1 / (nsim + 1)
out$sleepstudy_pb_quadratic <- pb_case("Reaction ~ Days + (Days|Subject)",
                                       "Reaction ~ Days + I(Days^2) + (Days|Subject)",
                                       nsim = 2000, seed = 20262)

# bootMer, parametric, cbpp by Laplace
boot_fun <- function(x) c(fixef(x), sd = as.data.frame(VarCorr(x))$sdcor)
mc <- glmer(cbind(incidence, size - incidence) ~ period + (1|herd), cb, family = binomial)
secs <- elapsed(b <- suppressMessages(suppressWarnings(
  bootMer(mc, boot_fun, nsim = 1000, seed = 20263, type = "parametric"))))
t <- b$t
ok <- stats::complete.cases(t)
q <- function(p) unname(apply(t[ok, , drop = FALSE], 2, quantile, probs = p, type = 7))
out$cbpp_boot <- list(
  kind = "bootstrap", data = "cbpp", family = "binomial", nAGQ = 1,
  formula = "cbind(incidence, size - incidence) ~ period + (1|herd)",
  FUN = "c(fixef(x), sd = as.data.frame(VarCorr(x))$sdcor)", type = "parametric",
  nsim = 1000, seed = 20263, stats = colnames(t), t0 = unname(b$t0),
  q025 = q(0.025), q50 = q(0.5), q975 = q(0.975),
  mean = unname(colMeans(t[ok, , drop = FALSE])), sd = unname(apply(t[ok, , drop = FALSE], 2, sd)),
  n_failed = sum(!ok), n_zero_sd = sum(t[ok, "sd"] < 1e-6), quantile_type = 7, seconds = secs)

# refit(m, newy): the same model, a new response simulated from the fit. The main fields
# are those of lmer() on the new response (what a correct refit gives); `lme4_refit` holds
# what lme4 1.1-31's refit() reports (see fix_refit above).
ms <- lmer(Reaction ~ Days + (Days|Subject), sl)
newy <- simulate(ms, seed = 1)[[1]]
r <- refit(ms, newy)
s2 <- sl; s2$Reaction <- newy
rf <- lmer(Reaction ~ Days + (Days|Subject), s2)
out$sleepstudy_refit <- list(
  formula = "Reaction ~ Days + (Days|Subject)", REML = TRUE, newy_from = "simulate(m, seed = 1)[[1]]",
  newy = newy, fitted_by = "lmer() on the new response",
  REMLcrit = REMLcrit(rf), logLik = as.numeric(logLik(rf)), fixef = as.list(fixef(rf)),
  theta = unname(getME(rf, "theta")), sigma = sigma(rf),
  sdcor = as.data.frame(VarCorr(rf))$sdcor, singular = isSingular(rf),
  lme4_refit = list(note = "lme4 1.1-31 refit(m, newy): REML criterion with REML = 1 in place of p = 2",
                    REMLcrit = REMLcrit(r), fixef = as.list(fixef(r)), theta = unname(getME(r, "theta")),
                    sigma = sigma(r), REMLcrit_own_response = REMLcrit(refit(ms, sl$Reaction)),
                    REMLcrit_own_response_lmer = REMLcrit(ms)))
sim <- simulate(mc, seed = 1)[[1]]  # a two-column matrix: incidence, size - incidence
r <- refit(mc, sim)
# lme4's PIRLS stops short of the conditional modes by default (tolPwrss = 1e-7), which
# lowers its Laplace log-likelihood by ~1e-4; the tight fit reaches them
cb2 <- cb; cb2$incidence <- sim[, 1]
rt <- glmer(cbind(incidence, size - incidence) ~ period + (1|herd), cb2, family = binomial,
            control = glmerControl(tolPwrss = 1e-13))
out$cbpp_refit <- list(
  formula = "cbind(incidence, size - incidence) ~ period + (1|herd)", nAGQ = 1,
  newy_from = "simulate(m, seed = 1)[[1]][, 1]", incidence = unname(sim[, 1]), size = cb$size,
  logLik = as.numeric(logLik(r)), fixef = as.list(fixef(r)), theta = unname(getME(r, "theta")),
  fixef_se = unname(sqrt(diag(as.matrix(vcov(r))))), singular = isSingular(r),
  tight_control = "glmerControl(tolPwrss = 1e-13)", tight_logLik = as.numeric(logLik(rt)),
  tight_fixef = as.list(fixef(rt)), tight_theta = unname(getME(rt, "theta")))
# bootMer, parametric, sleepstudy by REML with refit() patched: the replicates lmer() would
# give (../shared/reference/lme4_inference.json's sleepstudy_boot was made with the unpatched
# refit, so its variance components carry the REML = 1 error)
patched <- fix_refit()
secs <- elapsed(b <- suppressMessages(suppressWarnings(
  bootMer(ms, boot_fun, nsim = 2000, seed = 20264, type = "parametric"))))
t <- b$t
ok <- stats::complete.cases(t)
out$sleepstudy_boot_fixed <- list(
  kind = "bootstrap", data = "sleepstudy", family = "gaussian", REML = TRUE,
  formula = "Reaction ~ Days + (Days|Subject)", refit_patched = patched,
  patch = "refit.merMod: mkRespMod(..., REML = if (isREML(object)) ncol(getME(object, 'X')) else 0L)",
  FUN = "c(fixef(x), sd = as.data.frame(VarCorr(x))$sdcor)", type = "parametric",
  nsim = 2000, seed = 20264, stats = colnames(t), t0 = unname(b$t0),
  q025 = q(0.025), q50 = q(0.5), q975 = q(0.975),
  mean = unname(colMeans(t[ok, , drop = FALSE])), sd = unname(apply(t[ok, , drop = FALSE], 2, sd)),
  n_failed = sum(!ok), quantile_type = 7, seconds = secs,
  REMLcrit_own_response_patched_refit = REMLcrit(refit(ms, sl$Reaction)))
cat(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "\n")
