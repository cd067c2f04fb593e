# R's summary(aov) tables for designs beyond the shared references (unbalanced,
# repeated measures, crossed strata, covariates). Run: Rscript aov_extra.R
library(jsonlite)
library(lme4)
set.seed(20261201)
tables <- function(fit) {
  s <- summary(fit)
  if (inherits(fit, "aovlist")) {
    strata <- names(s)
    out <- lapply(s, function(x) x[[1]])
    names(out) <- sub("^Error: ", "", strata)
  } else {
    out <- list(Within = s[[1]])
  }
  lapply(out, function(t) {
    data.frame(term = trimws(rownames(t)), Df = t$Df, SumSq = t$`Sum Sq`, MeanSq = t$`Mean Sq`,
               F = if (is.null(t$`F value`)) NA else t$`F value`,
               p = if (is.null(t$`Pr(>F)`)) NA else t$`Pr(>F)`)
  })
}
reml <- function(formula, data) {
  # lme4's REML fit of the same model, the Error() terms as (1 | term)
  fit <- lmer(as.formula(formula), data = data, REML = TRUE,
              control = lmerControl(optimizer = "bobyqa", optCtrl = list(rhoend = 1e-12)))
  vc <- as.data.frame(VarCorr(fit))
  setNames(as.list(vc$vcov), vc$grp)
}
case <- function(name, formula, data, lmer_formula = NULL) {
  fit <- aov(as.formula(formula), data = data)
  out <- list(name = name, formula = formula, data = data, strata = tables(fit))
  if (!is.null(lmer_formula)) {
    out$lmer_formula <- lmer_formula
    out$reml <- reml(lmer_formula, data)
  }
  out
}
rm_design <- expand.grid(rep = 1:2, c = c("x", "y"), t = c("a", "b", "c"), subj = paste0("s", 1:6))
rm_design$y <- rnorm(nrow(rm_design)) + rnorm(6)[as.integer(rm_design$subj)]
unbal <- rm_design[sort(sample(nrow(rm_design), 58)), ]
crossed <- expand.grid(r = 1:2, b = paste0("b", 1:4), a = paste0("a", 1:3))
crossed <- crossed[-c(2, 7, 11), ]
crossed$y <- rnorm(nrow(crossed)) + rnorm(3)[as.integer(crossed$a)]
oneway <- data.frame(g = rep(paste0("g", 1:5), times = c(2, 3, 4, 5, 6)))
oneway$x <- round(runif(nrow(oneway)), 3)
oneway$trt <- rep(c("u", "v"), length.out = nrow(oneway))
oneway$y <- rnorm(nrow(oneway)) + 2 * oneway$x + rnorm(5)[as.integer(factor(oneway$g))]
npk_like <- expand.grid(p = 1:4, blk = paste0("B", 1:5))
npk_like$A <- rep(c("lo", "hi"), length.out = nrow(npk_like))
npk_like$B <- rep(c("p", "q", "q", "p"), length.out = nrow(npk_like))
npk_like$y <- rnorm(nrow(npk_like)) + 3
cases <- list(
  case("repeated", "y ~ t * c + Error(subj/(t * c))", rm_design[, c("subj", "t", "c", "y")]),
  case("unbalanced_split", "y ~ t * c + Error(subj/t)", unbal[, c("subj", "t", "c", "y")],
       "y ~ t * c + (1 | subj) + (1 | subj:t)"),
  case("crossed_strata", "y ~ 1 + Error(a + b)", crossed[, c("a", "b", "y")], "y ~ 1 + (1 | a) + (1 | b)"),
  case("unbalanced_covariate", "y ~ x + trt + Error(g)", oneway, "y ~ x + trt + (1 | g)"),
  case("no_error", "y ~ A * B + blk", npk_like[, c("blk", "A", "B", "y")])
)
for (i in seq_along(cases)) {
  d <- cases[[i]]$data
  for (v in names(d)) if (is.factor(d[[v]])) d[[v]] <- as.character(d[[v]])
  cases[[i]]$data <- d
}
writeLines(toJSON(list(R = R.version.string, cases = cases), digits = NA, auto_unbox = TRUE,
                  na = "null", dataframe = "columns"), "aov_extra.json")
