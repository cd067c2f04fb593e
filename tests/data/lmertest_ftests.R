# Reference F tests for tests/lmm/test_ftests.py: lmerTest 3.1-3 (type III / I anova,
# Satterthwaite and Kenward-Roger; contest for custom L) and pbkrtest 0.5.2 (KRmodcomp),
# lme4 1.1-31, R 4.2. Run from the repository root:
#   Rscript tests/data/lmertest_ftests.R > tests/data/lmertest_ftests.json
suppressMessages({library(lmerTest); library(pbkrtest); library(jsonlite)})
options(contrasts = c("contr.treatment", "contr.treatment"))  # formulaic codes ordered factors so too
cols <- fromJSON("src/multilevel/datasets/columns.json", simplifyVector = FALSE)
load_data <- function(name) {
  path <- file.path("src/multilevel/datasets", if (name == "InstEval") "InstEval.csv.gz" else paste0(name, ".csv"))
  d <- read.csv(path)
  for (col in cols[[name]]$columns) if (col$type %in% c("factor", "ordered"))
    d[[col$name]] <- factor(as.character(d[[col$name]]), levels = unlist(col$levels))
  d
}
table_rows <- function(tab) lapply(seq_len(nrow(tab)), function(i) list(
  term = rownames(tab)[i], NumDF = tab$NumDF[i], DenDF = tab$DenDF[i], F = tab[["F value"]][i],
  p = tab[["Pr(>F)"]][i]))
cases <- list(
  list(id = "dietox_interaction", data = "dietox", formula = "Weight ~ Time * Cu + Evit + (1 | Pig) + (1 | Litter)",
       reduced = "Weight ~ Time * Cu + (1 | Pig) + (1 | Litter)",
       contrasts = list(c(0, 0, 1, -1, 0, 0, 0, 0), rbind(c(0, 1, 0, 0, 0, 0, 0, 0), c(0, 0, 1, -1, 0, 0, 0, 0)))),
  list(id = "dietox_vector_first", data = "dietox", formula = "Weight ~ Time + Cu + (Time | Pig) + (1 | Litter)",
       reduced = "Weight ~ Time + (Time | Pig) + (1 | Litter)"),
  list(id = "grouseticks_height", data = "grouseticks", formula = "log(TICKS + 1) ~ YEAR * HEIGHT + (1 | BROOD) + (1 | LOCATION)",
       reduced = "log(TICKS + 1) ~ YEAR + HEIGHT + (1 | BROOD) + (1 | LOCATION)"),
  list(id = "cake_recipe", data = "cake", formula = "angle ~ recipe * temperature + (1 | recipe:replicate)",
       reduced = "angle ~ recipe + temperature + (1 | recipe:replicate)"),
  list(id = "cbpp_period_lmm", data = "cbpp", formula = "incidence ~ period + (1 | herd)",
       reduced = "incidence ~ 1 + (1 | herd)",
       contrasts = list(rbind(c(0, 1, -1, 0), c(0, 0, 1, -1), c(0, 1, 0, -1)))),
  list(id = "sleepstudy_days", data = "sleepstudy", formula = "Reaction ~ Days + (Days | Subject)",
       reduced = "Reaction ~ 1 + (Days | Subject)"),
  list(id = "insteval_service", data = "InstEval", formula = "y ~ service + (1 | s) + (1 | d) + (1 | dept:service)",
       kr = FALSE)
)
out <- list()
for (case in cases) {
  d <- load_data(case$data)
  m <- lmer(as.formula(case$formula), data = d, REML = TRUE)
  res <- list(id = case$id, data = case$data, formula = case$formula, REML = TRUE,
              REMLcrit = REMLcrit(m), theta = unname(getME(m, "theta")), sigma = sigma(m),
              fixef = as.list(fixef(m)))
  sat <- anova(m, ddf = "Satterthwaite")
  res$satterthwaite <- table_rows(sat)
  res$hypotheses <- lapply(attr(sat, "hypotheses"), function(L) unname(as.matrix(L)))
  if (!isFALSE(case$kr)) {
    res$kenward_roger <- table_rows(anova(m, ddf = "Kenward-Roger"))
    m0 <- lmer(as.formula(case$reduced), data = d, REML = TRUE)
    kr <- KRmodcomp(m, m0)
    res$reduced <- case$reduced
    res$krmodcomp <- list(F = kr$test["Ftest", "stat"], ndf = kr$test["Ftest", "ndf"],
                          ddf = kr$test["Ftest", "ddf"], Fscaling = kr$test["Ftest", "F.scaling"],
                          p = kr$test["Ftest", "p.value"])
  }
  if (!is.null(case$contrasts)) {
    res$contest <- lapply(case$contrasts, function(L) {
      L <- if (is.matrix(L)) L else matrix(L, nrow = 1)
      s <- contest(m, L, ddf = "Satterthwaite", joint = TRUE)
      k <- contest(m, L, ddf = "Kenward-Roger", joint = TRUE)
      list(L = unname(L), satterthwaite = list(NumDF = s$NumDF, DenDF = s$DenDF, F = s[["F value"]], p = s[["Pr(>F)"]]),
           kenward_roger = list(NumDF = k$NumDF, DenDF = k$DenDF, F = k[["F value"]], p = k[["Pr(>F)"]]))
    })
  }
  out[[case$id]] <- res
}
cat(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE, matrix = "rowmajor"))
