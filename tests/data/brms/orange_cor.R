# Orange with Asym and xmid correlated by tree (brms (1 | p | Tree)); run in tests/data/brms:
#   Rscript orange_cor.R > orange_cor.json
suppressPackageStartupMessages({library(brms); library(jsonlite); library(posterior)})
rstan::rstan_options(boost_lib = "/usr/include")
O <- read.csv("orange.csv"); O$Tree <- factor(O$Tree)
f <- brm(bf(circumference ~ Asym / (1 + exp((xmid - age) / scal)), Asym ~ 1 + (1 | p | Tree), xmid ~ 1 + (1 | p | Tree), scal ~ 1, nl = TRUE),
  data = O, prior = c(prior(normal(200, 50), nlpar = "Asym"), prior(normal(700, 200), nlpar = "xmid"), prior(normal(350, 100), nlpar = "scal"),
  prior(student_t(3, 0, 40), class = "sd", nlpar = "Asym"), prior(student_t(3, 0, 40), class = "sd", nlpar = "xmid"),
  prior(student_t(3, 0, 20), class = "sigma"), prior(lkj(2), class = "cor")),
  chains = 4, cores = 2, iter = 6000, warmup = 1000, seed = 20261201, control = list(adapt_delta = 0.95), backend = "rstan", refresh = 0)
s <- summarise_draws(as_draws_df(f), "mean", "sd", "rhat", "ess_bulk", "mcse_mean", "mcse_sd")
s <- s[grepl("^(b_|sd_|cor_|sigma)", s$variable), ]
writeLines(stancode(f), "orange_cor.stan")
cat(toJSON(list(formula = "Asym ~ 1 + (1 | p | Tree), xmid ~ 1 + (1 | p | Tree), scal ~ 1",
  priors = "b_Asym normal(200, 50); b_xmid normal(700, 200); b_scal normal(350, 100); sd (Asym, xmid) student_t(3, 0, 40); sigma student_t(3, 0, 20); cor lkj(2)",
  settings = "4 chains, 1000 warmup, 5000 draws, adapt_delta 0.95, seed 20261201", divergences = sum(nuts_params(f)$Value[nuts_params(f)$Parameter == "divergent__"]),
  summary = s), digits = NA, auto_unbox = TRUE, pretty = TRUE))
