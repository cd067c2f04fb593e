# Reference estimated marginal means for tests/model/test_emmeans.py: emmeans 1.8.4-1,
# lme4 1.1-31, pbkrtest 0.5.2, lmerTest 3.1-3, R 4.2. Run from the repository root:
#   Rscript tests/data/emmeans_refs.R > tests/data/emmeans_refs.json
suppressMessages({library(lme4); library(emmeans); library(jsonlite)})
options(contrasts = c("contr.treatment", "contr.treatment"))
emm_options(pbkrtest.limit = 1e5, lmerTest.limit = 1e5)
cols <- fromJSON("src/multilevel/datasets/columns.json", simplifyVector = FALSE)
load_data <- function(name) {
  d <- read.csv(file.path("src/multilevel/datasets", paste0(name, ".csv")))
  for (col in cols[[name]]$columns) if (col$type %in% c("factor", "ordered"))
    d[[col$name]] <- factor(as.character(d[[col$name]]), levels = unlist(col$levels))
  d
}
rows <- function(x) {
  s <- as.data.frame(summary(x))
  lapply(seq_len(nrow(s)), function(i) lapply(as.list(s[i, ]), function(v) if (is.factor(v)) as.character(v) else v))
}
model_info <- function(m) list(fixef = unname(fixef(m)), vcov = unname(as.matrix(vcov(m))),
                               theta = unname(getME(m, "theta")))
out <- list()

d <- load_data("cake")
m <- lmer(angle ~ recipe * temperature + (1 | recipe:replicate), data = d)
res <- c(list(data = "cake", formula = "angle ~ recipe * temperature + (1 | recipe:replicate)"), model_info(m))
for (mode in c("kenward-roger", "satterthwaite")) {
  e <- emmeans(m, ~ recipe, lmer.df = mode)
  eb <- emmeans(m, ~ recipe | temperature, lmer.df = mode)
  res[[mode]] <- list(
    recipe = rows(e),
    recipe_by_temperature = rows(eb),
    pairwise = lapply(c(tukey = "tukey", holm = "holm", bonferroni = "bonferroni", none = "none"),
                      function(a) rows(contrast(e, "pairwise", adjust = a))),
    custom = rows(contrast(e, list(AvsBC = c(1, -0.5, -0.5)), adjust = "none")),
    pairwise_by = rows(contrast(eb, "pairwise", adjust = "tukey")))
}
out$cake <- res

d <- load_data("dietox")
f <- "Weight ~ Time * Cu + Evit + (1 | Pig) + (1 | Litter)"
m <- lmer(as.formula(f), data = d)
res <- c(list(data = "dietox", formula = f), model_info(m))
for (mode in c("kenward-roger", "satterthwaite")) {
  res[[mode]] <- list(
    Cu = rows(emmeans(m, ~ Cu, lmer.df = mode)),
    Cu_proportional = rows(emmeans(m, ~ Cu, weights = "proportional", lmer.df = mode)),
    Cu_by_Time = rows(emmeans(m, ~ Cu | Time, at = list(Time = c(4, 8)), lmer.df = mode)),
    Cu_Evit = rows(emmeans(m, ~ Cu * Evit, lmer.df = mode)))
}
out$dietox <- res

d <- load_data("cbpp")
f <- "cbind(incidence, size - incidence) ~ period + (1 | herd)"
g <- glmer(as.formula(f), data = d, family = binomial)
e <- emmeans(g, ~ period)
er <- emmeans(g, ~ period, type = "response")
out$cbpp <- c(list(data = "cbpp", formula = f, family = "binomial"), model_info(g),
              list(link = rows(e), response = rows(er),
                   pairwise_link = rows(contrast(e, "pairwise", adjust = "tukey")),
                   pairwise_response = rows(contrast(er, "pairwise", adjust = "holm"))))

d <- load_data("grouseticks")
f <- "TICKS ~ YEAR + scale(HEIGHT) + (1 | BROOD) + (1 | INDEX) + (1 | LOCATION)"
g <- glmer(as.formula(f), data = d, family = poisson)
out$grouseticks <- c(list(data = "grouseticks", formula = f, family = "poisson"), model_info(g),
                     list(link = rows(emmeans(g, ~ YEAR)), response = rows(emmeans(g, ~ YEAR, type = "response"))))
cat(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, matrix = "rowmajor"))
