# Reference fits for the observed- and expected-information Laplace approximations
# (tests/data/laplace/laplace_refs.json): simulated Gamma-log and negative-binomial-log
# models, a binomial-probit and a Poisson-sqrt one (data written here, fixed seed, as
# sim_*.csv) and the public glmmTMB cases. lme4's Gamma glmer optimizes another
# criterion (Laplace weights without the dispersion, and a moment estimate of it in
# the density), so its Gamma logLik is not the expected-information Laplace's.
# glmmTMB's Laplace uses the observed Hessian of the joint log density, lme4's the
# expected (Fisher) information. R 4.2, glmmTMB 1.1.5, lme4 1.1-31; run from the
# repository root:
#   Rscript tests/data/laplace/laplace_refs.R /work/shared/data > tests/data/laplace/laplace_refs.json
suppressMessages({library(glmmTMB); library(lme4); library(jsonlite)})
args <- commandArgs(trailingOnly = TRUE)
shared <- if (length(args)) args[1] else "/work/shared/data"
here <- "tests/data/laplace"
set.seed(20261201)

sim <- function(n_g, per, n_h = 0) {
  g <- rep(seq_len(n_g), each = per)
  d <- data.frame(g = factor(paste0("g", g)), x = round(rnorm(length(g)), 4))
  if (n_h > 0) d$h <- factor(paste0("h", sample(seq_len(n_h), length(g), replace = TRUE)))
  d
}
rgam <- function(mu, shape) round(rgamma(length(mu), shape = shape, scale = mu / shape), 6)

# Gamma, log link: one factor, few observations per group, shape 1.5
d1 <- sim(30, 6)
d1$y <- rgam(exp(0.5 + 0.4 * d1$x + rnorm(30, 0, 0.5)[as.integer(d1$g)]), 1.5)
# Gamma, log link: crossed factors, shape 3
d2 <- sim(25, 10, n_h = 8)
d2$y <- rgam(exp(1 + 0.3 * d2$x + rnorm(25, 0, 0.4)[as.integer(d2$g)] +
                 rnorm(8, 0, 0.3)[as.integer(d2$h)]), 3)
# Gamma, log link: a random slope (vector term), shape 2
d3 <- sim(20, 10)
b0 <- rnorm(20, 0, 0.5); b1 <- rnorm(20, 0, 0.3)
d3$y <- rgam(exp(0.2 + (0.5 + b1[as.integer(d3$g)]) * d3$x + b0[as.integer(d3$g)]), 2)
# negative binomial, log link: one factor, shape k = 1.5
d4 <- sim(40, 6)
mu4 <- exp(0.8 + 0.5 * d4$x + rnorm(40, 0, 0.6)[as.integer(d4$g)])
d4$y <- rnbinom(nrow(d4), size = 1.5, mu = mu4)
# negative binomial, log link: crossed factors and a factor covariate, k = 4
d5 <- sim(30, 8, n_h = 6)
d5$f <- factor(sample(c("a", "b", "c"), nrow(d5), replace = TRUE))
mu5 <- exp(1.2 + 0.3 * d5$x + c(a = 0, b = 0.4, c = -0.3)[as.character(d5$f)] +
           rnorm(30, 0, 0.5)[as.integer(d5$g)] + rnorm(6, 0, 0.3)[as.integer(d5$h)])
d5$y <- rnbinom(nrow(d5), size = 4, mu = mu5)
# negative binomial, log link: low counts, small shape k = 0.6
d6 <- sim(30, 8)
mu6 <- exp(-0.2 + 0.4 * d6$x + rnorm(30, 0, 0.7)[as.integer(d6$g)])
d6$y <- rnbinom(nrow(d6), size = 0.6, mu = mu6)

# binomial, probit link, and Poisson, square-root link: other non-canonical links
d7 <- sim(40, 8)
d7$y <- rbinom(nrow(d7), 1, pnorm(0.2 + 0.5 * d7$x + rnorm(40, 0, 0.8)[as.integer(d7$g)]))
d8 <- sim(40, 8)
d8$y <- rpois(nrow(d8), (2 + 0.4 * d8$x + rnorm(40, 0, 0.4)[as.integer(d8$g)])^2)

sims <- list(
  sim_gamma_log = list(d = d1, formula = y ~ x + (1|g), family = "Gamma"),
  sim_gamma_log_crossed = list(d = d2, formula = y ~ x + (1|g) + (1|h), family = "Gamma"),
  sim_gamma_log_slope = list(d = d3, formula = y ~ x + (1 + x|g), family = "Gamma"),
  sim_nb_log = list(d = d4, formula = y ~ x + (1|g), family = "nbinom2"),
  sim_nb_log_crossed = list(d = d5, formula = y ~ x + f + (1|g) + (1|h), family = "nbinom2"),
  sim_nb_log_small_k = list(d = d6, formula = y ~ x + (1|g), family = "nbinom2"),
  sim_binomial_probit = list(d = d7, formula = y ~ x + (1|g), family = "binomial", link = "probit"),
  sim_poisson_sqrt = list(d = d8, formula = y ~ x + (1|g), family = "poisson", link = "sqrt")
)

sal <- read.csv(file.path(shared, "Salamanders.csv"), stringsAsFactors = TRUE)
sal$spp <- factor(sal$spp, levels = c("GP", "PR", "DM", "EC-A", "EC-L", "DES-L", "DF"))
sal$mined <- factor(sal$mined, levels = c("yes", "no"))
gt <- read.csv(file.path(shared, "grouseticks.csv"))
for (v in c("YEAR", "BROOD", "LOCATION")) gt[[v]] <- factor(gt[[v]])
gt$HEIGHTs <- as.numeric(scale(gt$HEIGHT))
gs <- read.csv(file.path(shared, "gamma_sim.csv")); gs$g <- factor(gs$g)
public <- list(
  salamanders_nb2 = list(d = sal, formula = count ~ spp + mined + (1|site), family = "nbinom2",
                         data = "Salamanders"),
  grouseticks_nb2 = list(d = gt, formula = TICKS ~ YEAR + HEIGHTs + (1|BROOD) + (1|LOCATION),
                         family = "nbinom2", data = "grouseticks"),
  gamma_sim_log = list(d = gs, formula = y ~ x + (1|g), family = "Gamma", data = "gamma_sim")
)

sds <- function(vc) lapply(vc, function(m) as.list(sqrt(diag(m))))
link <- function(cs) if (is.null(cs$link)) "log" else cs$link
family_of <- function(cs) {
  switch(cs$family, Gamma = Gamma(link = "log"), nbinom2 = nbinom2(link = "log"),
         binomial = binomial(link = link(cs)), poisson = poisson(link = link(cs)))
}
tmb <- function(cs) {
  m <- glmmTMB(cs$formula, cs$d, family = family_of(cs))
  disp <- switch(cs$family, Gamma = list(phi = sigma(m)^2), nbinom2 = list(nb_shape_k = sigma(m)),
                 NULL)
  list(logLik = as.numeric(logLik(m)), fixef = as.list(fixef(m)$cond),
       fixef_se = as.list(sqrt(diag(vcov(m)$cond))), sd = sds(VarCorr(m)$cond),
       dispersion = disp, converged = m$sdr$pdHess && m$fit$convergence == 0)
}
lme <- function(cs) {
  ctl <- glmerControl(tolPwrss = 1e-13)
  if (cs$family == "nbinom2") {
    m <- glmer.nb(cs$formula, cs$d, control = ctl)
    disp <- list(nb_shape_k = getME(m, "glmer.nb.theta"))
  } else {
    m <- glmer(cs$formula, cs$d, family = family_of(cs), control = ctl)
    disp <- if (cs$family == "Gamma") list(phi = sigma(m)^2) else NULL
  }
  list(logLik = as.numeric(logLik(m)), fixef = as.list(fixef(m)), sd = sds(VarCorr(m)),
       dispersion = disp)
}
out <- list()
for (id in names(sims)) {
  cs <- sims[[id]]
  write.csv(cs$d, file.path(here, paste0(id, ".csv")), row.names = FALSE)
  out[[id]] <- list(id = id, data = id, formula = deparse(cs$formula), family = cs$family,
                    link = link(cs), glmmTMB = tmb(cs), lme4 = lme(cs))
}
for (id in names(public)) {
  cs <- public[[id]]
  out[[id]] <- list(id = id, data = cs$data, formula = deparse(cs$formula), family = cs$family,
                    link = "log", glmmTMB = tmb(cs), lme4 = lme(cs))
}
out$versions <- list(R = R.version.string, glmmTMB = as.character(packageVersion("glmmTMB")),
                     lme4 = as.character(packageVersion("lme4")))
cat(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE))
