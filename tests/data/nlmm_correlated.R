# Orange with correlated random effects on Asym and xmid: nlme (pdSymm, ML) and nlmer (Laplace).
# Run from tests/data: Rscript nlmm_correlated.R > nlmm_correlated.json
suppressPackageStartupMessages({library(nlme); library(lme4); library(jsonlite)})
O <- read.csv("Orange.csv"); O$Tree <- factor(O$Tree)
f1 <- nlme(circumference ~ SSlogis(age, Asym, xmid, scal), data = O, fixed = Asym + xmid + scal ~ 1,
           random = Asym + xmid ~ 1 | Tree, start = c(Asym = 192, xmid = 728, scal = 348), method = "ML")
f2 <- nlmer(circumference ~ SSlogis(age, Asym, xmid, scal) ~ (Asym + xmid | Tree), O,
            start = c(Asym = 192, xmid = 728, scal = 348))
vc <- as.data.frame(VarCorr(f2))
out <- list(nlme = list(logLik = as.numeric(logLik(f1)), fixef = as.list(fixef(f1)),
                        sd = as.list(as.numeric(VarCorr(f1)[1:2, 2])), cor = as.numeric(VarCorr(f1)[2, 3]),
                        sigma = f1$sigma),
            nlmer = list(logLik = as.numeric(logLik(f2)), fixef = as.list(fixef(f2)), varcorr = vc,
                         deviance = deviance(f2)))
cat(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE))
