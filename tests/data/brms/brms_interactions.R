# Reference posteriors from brms for latent covariates inside interactions,
# y ~ me(x, sdx) * z + (1 | g) and y ~ mi(x) * z + (1 | g) with x | mi() ~ z, and for an
# mi() sub-model with a random intercept, bf(y ~ mi(x) + z + (1 | g)) + bf(x | mi() ~ z + (1 | g)).
# Run:  Rscript brms_interactions.R <outdir>
# (writes brms_interactions.json, me_int_data.csv, brms_mi_groups.json, mi_groups_data.csv)
suppressPackageStartupMessages({
  library(brms)
  library(rstan)
  library(posterior)
  library(jsonlite)
})
if (!file.exists(rstan_options("boost_lib"))) rstan_options(boost_lib = "/usr/include")
args <- commandArgs(TRUE)
outdir <- if (length(args)) args[1] else "."
here <- normalizePath(dirname(sub("--file=", "", grep("--file=", commandArgs(FALSE), value = TRUE))))
setwd(outdir)

settings <- list(chains = 4L, cores = 2L, iter = 6000L, warmup = 1000L, seed = 20261202L,
                 adapt_delta = 0.95, backend = "rstan")
keep_re <- "^(b_|bsp_|sd_|sigma|meanme_|sdme_|Intercept)"

run <- function(formula, data, prior) {
  tc <- system.time(fit0 <- brm(formula, data = data, prior = prior, chains = 0,
                                backend = settings$backend, seed = settings$seed))
  ts <- system.time(fit <- update(fit0, recompile = FALSE, chains = settings$chains,
                                  cores = settings$cores, iter = settings$iter,
                                  warmup = settings$warmup, seed = settings$seed,
                                  control = list(adapt_delta = settings$adapt_delta)))
  dr <- posterior::as_draws_df(fit)
  s <- posterior::summarise_draws(dr, "mean", "sd", "rhat", "ess_bulk", "mcse_mean", "mcse_sd")
  s <- as.data.frame(s[grepl(keep_re, s$variable), ])
  np <- brms::nuts_params(fit)
  print(s, digits = 4)
  list(formula = paste(capture.output(print(fit$formula)), collapse = "\n"),
       settings = settings, summary = s,
       divergences = sum(np$Value[np$Parameter == "divergent__"]),
       max_rhat = max(s$rhat), compile_s = tc[["elapsed"]], sample_s = ts[["elapsed"]])
}

refs <- list()

set.seed(31); n <- 200; g <- rep(1:20, each = 10); xt <- rnorm(n, 1, 1); sdx <- runif(n, 0.3, 0.8)
x <- xt + rnorm(n, 0, sdx); z <- rnorm(n); u <- rnorm(20, 0, 0.5)
y <- 0.5 + 1.0 * xt - 0.5 * z + 0.7 * xt * z + u[g] + rnorm(n, 0, 0.5)
d_me <- data.frame(y, x, sdx, z, g = factor(g))
write.csv(d_me, "me_int_data.csv", row.names = FALSE)
p_me <- c(prior(normal(0, 10), class = "Intercept"), prior(normal(0, 10), class = "b"),
          prior(student_t(3, 0, 2.5), class = "sd"), prior(student_t(3, 0, 2.5), class = "sigma"),
          prior(normal(0, 10), class = "meanme"), prior(student_t(3, 0, 2.5), class = "sdme"))
refs$me_int <- run(bf(y ~ me(x, sdx) * z + (1 | g)), d_me, p_me)

d_mi <- read.csv(file.path(here, "mi_data.csv"))
d_mi$g <- factor(d_mi$g)
p_mi <- c(prior(normal(0, 10), class = "b", resp = "y"), prior(normal(0, 10), class = "b", resp = "x"),
          prior(normal(0, 10), class = "Intercept", resp = "y"),
          prior(normal(0, 10), class = "Intercept", resp = "x"),
          prior(student_t(3, 0, 2.5), class = "sigma", resp = "y"),
          prior(student_t(3, 0, 2.5), class = "sigma", resp = "x"),
          prior(student_t(3, 0, 2.5), class = "sd", resp = "y"))
refs$mi_int <- run(bf(y ~ mi(x) * z + (1 | g)) + bf(x | mi() ~ z) + set_rescor(FALSE), d_mi, p_mi)
refs$versions <- list(brms = as.character(packageVersion("brms")), R = R.version.string)
writeLines(toJSON(refs, auto_unbox = TRUE, digits = NA, pretty = TRUE), "brms_interactions.json")

## ---- mi() sub-model with a random intercept
settings_g <- list(chains = 4L, cores = 2L, iter = 6000L, warmup = 1000L, seed = 20261203L,
                 adapt_delta = 0.95, backend = "rstan")

set.seed(41); n <- 200; g <- rep(1:20, each = 10); z <- rnorm(n)
x <- 1 + 0.5 * z + rnorm(20, 0, 0.6)[g] + rnorm(n, 0, 0.6)
y <- 0.5 + 1.0 * x - 0.5 * z + rnorm(20, 0, 0.5)[g] + rnorm(n, 0, 0.6)
x[sample(n, 50)] <- NA
d <- data.frame(y, x, z, g = factor(g))
write.csv(d, "mi_groups_data.csv", row.names = FALSE, na = "NA")
p <- c(prior(normal(0, 10), class = "b", resp = "y"), prior(normal(0, 10), class = "b", resp = "x"),
       prior(normal(0, 10), class = "Intercept", resp = "y"),
       prior(normal(0, 10), class = "Intercept", resp = "x"),
       prior(student_t(3, 0, 2.5), class = "sigma", resp = "y"),
       prior(student_t(3, 0, 2.5), class = "sigma", resp = "x"),
       prior(student_t(3, 0, 2.5), class = "sd", resp = "y"),
       prior(student_t(3, 0, 2.5), class = "sd", resp = "x"))
f <- bf(y ~ mi(x) + z + (1 | g)) + bf(x | mi() ~ z + (1 | g)) + set_rescor(FALSE)
tc <- system.time(fit0 <- brm(f, data = d, prior = p, chains = 0, backend = settings_g$backend,
                              seed = settings_g$seed))
ts <- system.time(fit <- update(fit0, recompile = FALSE, chains = settings_g$chains,
                                cores = settings_g$cores, iter = settings_g$iter, warmup = settings_g$warmup,
                                seed = settings_g$seed, control = list(adapt_delta = settings_g$adapt_delta)))
dr <- posterior::as_draws_df(fit)
s <- posterior::summarise_draws(dr, "mean", "sd", "rhat", "ess_bulk", "mcse_mean", "mcse_sd")
s <- as.data.frame(s[grepl("^(b_|bsp_|sd_|sigma|r_g__x|Ymi_x)", s$variable), ])
print(s, digits = 4)
np <- brms::nuts_params(fit)
out <- list(formula = paste(capture.output(print(fit$formula)), collapse = "\n"), settings = settings_g,
            summary = s, divergences = sum(np$Value[np$Parameter == "divergent__"]),
            max_rhat = max(s$rhat), compile_s = tc[["elapsed"]], sample_s = ts[["elapsed"]],
            missing_rows = which(is.na(d$x)),
            versions = list(brms = as.character(packageVersion("brms")), R = R.version.string))
writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), "brms_mi_groups.json")
