# lme4's glmer criterion for the other families with a scale dispersion (inverse
# Gaussian, Gaussian with a log link) on simulated data (written here as sim_*.csv):
# tests/data/laplace/lme4_dispersion_refs.json. R 4.2, lme4 1.1-31; from the
# repository root:
#   Rscript tests/data/laplace/lme4_dispersion_refs.R > tests/data/laplace/lme4_dispersion_refs.json
suppressMessages({library(lme4); library(jsonlite); library(statmod)})
here <- "tests/data/laplace"
set.seed(20261202)
g <- rep(1:30, each = 8)
d1 <- data.frame(g = factor(paste0("g", g)), x = round(rnorm(length(g)), 4))
mu1 <- exp(0.3 + 0.4 * d1$x + rnorm(30, 0, 0.4)[g])
d1$y <- round(rinvgauss(nrow(d1), mean = mu1, dispersion = 0.3), 6)
d2 <- data.frame(g = factor(paste0("g", g)), x = round(rnorm(length(g)), 4))
d2$y <- round(exp(2 + 0.3 * d2$x + rnorm(30, 0, 0.3)[g]) + rnorm(nrow(d2), 0, 0.8), 6)
cases <- list(
  sim_invgauss_log = list(d = d1, family = inverse.gaussian(link = "log")),
  sim_gaussian_log = list(d = d2, family = gaussian(link = "log"))
)
out <- list()
for (id in names(cases)) {
  cs <- cases[[id]]
  write.csv(cs$d, file.path(here, paste0(id, ".csv")), row.names = FALSE)
  m <- glmer(y ~ x + (1 | g), cs$d, family = cs$family, control = glmerControl(tolPwrss = 1e-13))
  out[[id]] <- list(id = id, formula = "y ~ x + (1 | g)", family = cs$family$family,
                    link = cs$family$link, logLik = as.numeric(logLik(m)),
                    fixef = as.list(fixef(m)), theta = as.list(getME(m, "theta")),
                    sigma = sigma(m))
}
out$versions <- list(R = R.version.string, lme4 = as.character(packageVersion("lme4")))
cat(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE))
