# Reference posteriors from brms for three models: orange (non-linear),
# me (measurement error), mi (missing-value imputation).
# Run from /work/refs/brms:  Rscript brms_refs.R > log.txt 2>&1
suppressPackageStartupMessages({
  library(brms)
  library(rstan)
  library(posterior)
  library(jsonlite)
  library(lme4)
})

# Debian's r-cran-bh ships no headers (Boost comes from libboost-dev in
# /usr/include), so rstan's default boost_lib (system.file("include",
# package = "BH")) is empty and stan_model() stops with "Boost not found".
if (!file.exists(rstan_options("boost_lib"))) {
  rstan_options(boost_lib = "/usr/include")
}
cat("rstan boost_lib:", rstan_options("boost_lib"), "\n")

outdir <- "/work/refs/brms"
dir.create(outdir, showWarnings = FALSE, recursive = TRUE)
setwd(outdir)

settings <- list(chains = 4L, cores = 2L, iter = 6000L, warmup = 1000L,
                 seed = 20261201L, adapt_delta = 0.95, backend = "rstan")

keep_re <- "^(b_|bsp_|sd_|sigma|meanme_|sdme_|Intercept)"

summarise_pop <- function(fit) {
  dr <- posterior::as_draws_df(fit)
  s <- posterior::summarise_draws(
    dr, "mean", "sd",
    ~quantile(.x, probs = c(0.025, 0.25, 0.5, 0.75, 0.975)),
    "rhat", "ess_bulk", "ess_tail", "mcse_mean", "mcse_sd")
  s <- as.data.frame(s[grepl(keep_re, s$variable), ])
  rownames(s) <- NULL
  s
}

prior_strings <- function(ps) {
  ps <- as.data.frame(ps)
  apply(ps, 1, function(r) {
    r <- trimws(r)
    lab <- c("class", "coef", "group", "resp", "dpar", "nlpar", "lb", "ub", "source")
    lab <- lab[lab %in% names(r)]
    extra <- vapply(lab, function(l) if (nzchar(r[[l]])) paste0(l, "=", r[[l]]) else NA_character_, "")
    pr <- if (nzchar(r[["prior"]])) r[["prior"]] else "(inherited/vectorized)"
    paste(c(pr, extra[!is.na(extra)]), collapse = " | ")
  }, simplify = TRUE) |> unname()
}

count_div <- function(fit) {
  np <- brms::nuts_params(fit)
  sum(np$Value[np$Parameter == "divergent__"])
}

fit_model <- function(name, formula, data, prior, family = gaussian(),
                      adapt_delta = settings$adapt_delta) {
  cat("\n==================== ", name, " (adapt_delta = ", adapt_delta,
      ") ====================\n", sep = "")
  # 1) compile only (chains = 0) -> compile time
  tc <- system.time(
    fit0 <- brm(formula, data = data, family = family, prior = prior,
                chains = 0, backend = settings$backend,
                seed = settings$seed)
  )
  cat("compile elapsed:", tc[["elapsed"]], "s\n")
  # 2) sample with the already compiled model -> sampling time
  ts <- system.time(
    fit <- update(fit0, recompile = FALSE,
                  chains = settings$chains, cores = settings$cores,
                  iter = settings$iter, warmup = settings$warmup,
                  seed = settings$seed, backend = settings$backend,
                  control = list(adapt_delta = adapt_delta))
  )
  cat("sampling elapsed:", ts[["elapsed"]], "s\n")
  list(fit = fit, compile_s = tc[["elapsed"]], sample_s = ts[["elapsed"]],
       adapt_delta = adapt_delta)
}

record <- function(name, res, user_prior) {
  fit <- res$fit
  writeLines(stancode(fit), paste0(name, ".stan"))
  ps <- prior_summary(fit)
  capture.output(print(ps, show_df = TRUE), file = paste0(name, "_priors.txt"))
  summ <- summarise_pop(fit)
  print(summ, digits = 4)
  et <- rstan::get_elapsed_time(fit$fit)
  ndiv <- count_div(fit)
  cat("divergences:", ndiv, "  max rhat:", max(summ$rhat), "\n")
  st <- settings
  st$adapt_delta <- res$adapt_delta
  list(
    formula = paste(capture.output(print(fit$formula)), collapse = "\n"),
    priors = prior_strings(ps),
    priors_user = paste(capture.output(print(user_prior)), collapse = "\n"),
    prior_table = as.data.frame(ps),
    settings = st,
    summary = summ,
    divergences = ndiv,
    max_rhat = max(summ$rhat),
    all_rhat_below_1.01 = all(summ$rhat < 1.01),
    compile_s = res$compile_s,
    sample_s = res$sample_s,
    chain_elapsed_s = data.frame(chain = seq_len(nrow(et)),
                                 warmup = et[, "warmup"], sample = et[, "sample"]),
    nobs = nobs(fit)
  )
}

run_and_record <- function(name, formula, data, prior, family = gaussian()) {
  res <- fit_model(name, formula, data, prior, family)
  out <- record(name, res, prior)
  if (out$divergences > 0) {
    cat(name, ": ", out$divergences, " divergences -> rerun with adapt_delta = 0.99\n", sep = "")
    first <- out[c("divergences", "max_rhat", "compile_s", "sample_s", "settings")]
    res <- fit_model(name, formula, data, prior, family, adapt_delta = 0.99)
    out <- record(name, res, prior)
    out$first_run_adapt_delta_0.95 <- first
  }
  list(out = out, fit = res$fit)
}

refs <- list()

## ---------------------------------------------------------------- orange
orange <- datasets::Orange
orange$Tree <- factor(as.character(orange$Tree))
orange <- data.frame(Tree = orange$Tree, age = orange$age,
                     circumference = orange$circumference)
write.csv(orange, "orange.csv", row.names = FALSE)
f_orange <- bf(circumference ~ Asym / (1 + exp((xmid - age) / scal)),
               Asym ~ 1 + (1 | Tree), xmid ~ 1, scal ~ 1, nl = TRUE)
p_orange <- c(prior(normal(200, 50), nlpar = "Asym"),
              prior(normal(700, 200), nlpar = "xmid"),
              prior(normal(350, 100), nlpar = "scal"),
              prior(student_t(3, 0, 40), class = "sd", nlpar = "Asym"),
              prior(student_t(3, 0, 20), class = "sigma"))
r <- run_and_record("orange", f_orange, orange, p_orange)
refs$orange <- r$out
refs$orange$data_file <- "orange.csv"
rm(r); gc()

## ---------------------------------------------------------------- me
set.seed(17); n <- 200; g <- rep(1:20, each = 10); xt <- rnorm(n, 1, 1); sdx <- runif(n, 0.3, 0.8)
x <- xt + rnorm(n, 0, sdx); u <- rnorm(20, 0, 0.5); y <- 0.5 + 1.0 * xt + u[g] + rnorm(n, 0, 0.5)
d_me <- data.frame(y, x, sdx, g = factor(g))
write.csv(d_me, "me_data.csv", row.names = FALSE)
f_me <- bf(y ~ me(x, sdx) + (1 | g))
cat("\nget_prior for me model:\n"); print(get_prior(f_me, data = d_me))
p_me <- c(prior(normal(0, 10), class = "Intercept"),
          prior(normal(0, 10), class = "b"),
          prior(student_t(3, 0, 2.5), class = "sd"),
          prior(student_t(3, 0, 2.5), class = "sigma"),
          prior(normal(0, 10), class = "meanme"),
          prior(student_t(3, 0, 2.5), class = "sdme"))
r <- run_and_record("me", f_me, d_me, p_me)
refs$me <- r$out
refs$me$data_file <- "me_data.csv"
# naive model ignoring measurement error (attenuation)
naive <- lme4::lmer(y ~ x + (1 | g), data = d_me, REML = FALSE)
cf <- summary(naive)$coefficients
refs$me$naive_lmer <- list(
  call = "lme4::lmer(y ~ x + (1 | g), data = d, REML = FALSE)",
  fixef = data.frame(term = rownames(cf), estimate = cf[, "Estimate"],
                     se = cf[, "Std. Error"], row.names = NULL),
  sd_g = as.data.frame(VarCorr(naive))$sdcor[1],
  sigma = sigma(naive),
  logLik = as.numeric(logLik(naive)))
cat("\nnaive lmer:\n"); print(summary(naive))
rm(r); gc()

## ---------------------------------------------------------------- mi
set.seed(23); n <- 200; g <- rep(1:20, each = 10); z <- rnorm(n); x <- 1 + 0.5 * z + rnorm(n, 0, 0.8)
u <- rnorm(20, 0, 0.5); y <- 0.5 + 1.0 * x - 0.5 * z + u[g] + rnorm(n, 0, 0.6)
miss <- sample(n, 50); x[miss] <- NA
d_mi <- data.frame(y, x, z, g = factor(g))
write.csv(d_mi, "mi_data.csv", row.names = FALSE, na = "NA")
f_mi <- bf(y ~ mi(x) + z + (1 | g)) + bf(x | mi() ~ z) + set_rescor(FALSE)
cat("\nget_prior for mi model:\n"); print(get_prior(f_mi, data = d_mi))
p_mi <- c(prior(normal(0, 10), class = "b", resp = "y"),
          prior(normal(0, 10), class = "b", resp = "x"),
          prior(normal(0, 10), class = "Intercept", resp = "y"),
          prior(normal(0, 10), class = "Intercept", resp = "x"),
          prior(student_t(3, 0, 2.5), class = "sigma", resp = "y"),
          prior(student_t(3, 0, 2.5), class = "sigma", resp = "x"),
          prior(student_t(3, 0, 2.5), class = "sd", resp = "y"))
r <- run_and_record("mi", f_mi, d_mi, p_mi)
refs$mi <- r$out
refs$mi$data_file <- "mi_data.csv"
dr <- posterior::as_draws_df(r$fit)
ymi <- grep("^Ymi_x\\[", names(dr), value = TRUE)
ymi <- ymi[order(as.integer(sub("^Ymi_x\\[(\\d+)\\]$", "\\1", ymi)))]
rows <- which(is.na(d_mi$x))   # brms: Jmi_x = which(is.na(x)), ascending
sdata <- standata(r$fit)
stopifnot(identical(as.integer(sdata$Jmi_x), rows), length(ymi) == length(rows))
m <- as.matrix(posterior::as_draws_matrix(dr)[, ymi])
refs$mi$imputed <- data.frame(variable = ymi, row = rows,
                              mean = unname(colMeans(m)),
                              sd = unname(apply(m, 2, sd)),
                              rhat = unname(apply(m, 2, posterior::rhat)))
refs$mi$imputed_note <- paste("Ymi_x[k] is the imputed x for data row Jmi_x[k] =",
  "which(is.na(x))[k] (1-based, ascending row order; the sample() order of 'miss' is not used).")
cat("\nimputed (first 10):\n"); print(head(refs$mi$imputed, 10))
rm(r, dr, m); gc()

## ---------------------------------------------------------------- versions
refs$versions <- list(
  brms = as.character(packageVersion("brms")),
  rstan = as.character(packageVersion("rstan")),
  StanHeaders = as.character(packageVersion("StanHeaders")),
  posterior = as.character(packageVersion("posterior")),
  lme4 = as.character(packageVersion("lme4")),
  R = R.version.string)

write_json(refs, file.path(outdir, "brms_refs.json"), auto_unbox = TRUE,
           digits = NA, pretty = TRUE, dataframe = "rows", na = "null")
cat("\nwrote", file.path(outdir, "brms_refs.json"), "\n")
cat("\nRHAT/DIVERGENCE CHECK\n")
for (nm in c("orange", "me", "mi")) {
  cat(sprintf("%-7s max_rhat=%.5f all<1.01=%s divergences=%d adapt_delta=%.2f compile=%.1fs sample=%.1fs\n",
              nm, refs[[nm]]$max_rhat, refs[[nm]]$all_rhat_below_1.01,
              as.integer(refs[[nm]]$divergences), refs[[nm]]$settings$adapt_delta,
              refs[[nm]]$compile_s, refs[[nm]]$sample_s))
}
sessionInfo()
