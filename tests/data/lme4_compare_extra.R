# Reference numbers for multilevel's likelihood-ratio tests and profile intervals
# (tests/data/lme4_compare_extra.json). R 4.2, lme4 1.1-31; run from /work/shared/data:
#   Rscript tests/data/lme4_compare_extra.R > tests/data/lme4_compare_extra.json
suppressMessages({library(lme4); library(jsonlite)})
out <- list()
cbpp <- read.csv("cbpp.csv"); cbpp$herd <- factor(cbpp$herd); cbpp$period <- factor(cbpp$period)
c0 <- glmer(cbind(incidence, size - incidence) ~ 1 + (1|herd), cbpp, family = binomial)
c1 <- glmer(cbind(incidence, size - incidence) ~ period + (1|herd), cbpp, family = binomial)
# lme4's PIRLS stops short of the conditional modes by default (tolPwrss = 1e-7), which
# lowers its Laplace log-likelihoods by ~2e-4; with a tight tolerance it reaches the modes
ctl <- glmerControl(tolPwrss = 1e-13)
t0 <- glmer(cbind(incidence, size - incidence) ~ 1 + (1|herd), cbpp, family = binomial, control = ctl)
t1 <- glmer(cbind(incidence, size - incidence) ~ period + (1|herd), cbpp, family = binomial, control = ctl)
out$cbpp_lrt_pirls <- list(
  formulas = c("cbind(incidence, size - incidence) ~ 1 + (1|herd)",
               "cbind(incidence, size - incidence) ~ period + (1|herd)"),
  default_logLik = c(as.numeric(logLik(c0)), as.numeric(logLik(c1))),
  default_Chisq = anova(c0, c1)$Chisq[2],
  tight_control = "glmerControl(tolPwrss = 1e-13)",
  npar = c(2, 5), logLik = c(as.numeric(logLik(t0)), as.numeric(logLik(t1))),
  AIC = c(AIC(t0), AIC(t1)), BIC = c(BIC(t0), BIC(t1)),
  Chisq = anova(t0, t1)$Chisq[2], Df = 3, p = anova(t0, t1)[["Pr(>Chisq)"]][2])
# three sleepstudy models, refitted by ML
sl <- read.csv("sleepstudy.csv"); sl$Subject <- factor(sl$Subject)
s0 <- lmer(Reaction ~ Days + (1|Subject), sl)
s1 <- lmer(Reaction ~ Days + (Days||Subject), sl)
s2 <- lmer(Reaction ~ Days + (Days|Subject), sl)
a <- suppressMessages(anova(s0, s1, s2))
out$sleepstudy_three_lrt <- list(
  formulas = c("Reaction ~ Days + (1|Subject)", "Reaction ~ Days + (Days||Subject)",
               "Reaction ~ Days + (Days|Subject)"),
  refit = TRUE, npar = a$npar, AIC = a$AIC, BIC = a$BIC, logLik = a$logLik, deviance = a$deviance,
  Chisq = a$Chisq[-1], Df = a$Df[-1], p = a[["Pr(>Chisq)"]][-1])
# Pastes: the batch variance (REML, refit = FALSE); the chi-bar-square p is half lme4's
pa <- read.csv("Pastes.csv"); pa$batch <- factor(pa$batch); pa$cask <- factor(pa$cask)
p0 <- lmer(strength ~ 1 + (1|cask:batch), pa)
p1 <- lmer(strength ~ 1 + (1|batch/cask), pa)
a <- anova(p0, p1, refit = FALSE)
out$pastes_batch_lrt_reml <- list(
  formulas = c("strength ~ 1 + (1|cask:batch)", "strength ~ 1 + (1|batch/cask)"), refit = FALSE,
  npar = a$npar, logLik = a$logLik, deviance = a$deviance, Chisq = a$Chisq[2], Df = a$Df[2],
  p = a[["Pr(>Chisq)"]][2], p_chibar = 0.5 * a[["Pr(>Chisq)"]][2])
# cbpp by adaptive quadrature (25 nodes): profile intervals
c25 <- glmer(cbind(incidence, size - incidence) ~ period + (1|herd), cbpp, family = binomial, nAGQ = 25)
ci <- suppressMessages(confint(c25, method = "profile", oldNames = FALSE))
out$cbpp_agq25_profile <- list(
  formula = "cbind(incidence, size - incidence) ~ period + (1|herd)", nAGQ = 25, level = 0.95,
  ci = lapply(seq_len(nrow(ci)), function(i) list(par = rownames(ci)[i], lower = ci[i, 1], upper = ci[i, 2])))
# Penicillin (crossed), 90% intervals
pe <- read.csv("Penicillin.csv"); pe$plate <- factor(pe$plate); pe$sample <- factor(pe$sample)
mp <- lmer(diameter ~ 1 + (1|plate) + (1|sample), pe)
ci <- suppressMessages(confint(mp, level = 0.9, oldNames = FALSE))
out$penicillin_profile_90 <- list(
  formula = "diameter ~ 1 + (1|plate) + (1|sample)", REML = TRUE, level = 0.9,
  ci = lapply(seq_len(nrow(ci)), function(i) list(par = rownames(ci)[i], lower = ci[i, 1], upper = ci[i, 2])))
# prior weights
sl$w <- 1 + sl$Days %% 3
mw <- lmer(Reaction ~ Days + (Days|Subject), sl, weights = w)
ci <- suppressMessages(confint(mw, oldNames = FALSE))
out$sleepstudy_weighted_profile <- list(
  formula = "Reaction ~ Days + (Days|Subject)", weights = "1 + Days %% 3", REML = TRUE, level = 0.95,
  ci = lapply(seq_len(nrow(ci)), function(i) list(par = rownames(ci)[i], lower = ci[i, 1], upper = ci[i, 2])))
# timing of the benchmark's case
m <- lmer(Reaction ~ Days + (Days|Subject), sl)
t <- replicate(3, system.time(suppressMessages(confint(m, method = "profile")))[["elapsed"]])
out$sleepstudy_confint_seconds <- median(t)
cat(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE))
