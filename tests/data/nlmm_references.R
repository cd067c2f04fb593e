# References for multilevel.nlfit: nlme (ML) and lme4::nlmer (Laplace) fits of R's
# nonlinear data sets. Writes the data as CSV and nlmm_references.json next to this script.
#   Rscript tests/data/nlmm_references.R
suppressPackageStartupMessages({library(nlme); library(lme4); library(jsonlite)})
here <- dirname(normalizePath(sub("--file=", "", grep("--file=", commandArgs(FALSE), value = TRUE))))
export <- function(d, name) {
  d <- as.data.frame(d)
  for (v in names(d)) if (is.factor(d[[v]])) d[[v]] <- as.character(d[[v]])
  write.csv(d, file.path(here, paste0(name, ".csv")), row.names = FALSE)
}
export(Orange, "Orange"); export(Theoph, "Theoph"); export(DNase, "DNase"); export(Indometh, "Indometh"); export(CO2, "CO2")

nlme_ref <- function(m) {
  vc <- VarCorr(m)
  sds <- suppressWarnings(as.numeric(vc[, "StdDev"]))
  names(sds) <- rownames(vc)
  t0 <- system.time(NULL)
  list(loglik = as.numeric(logLik(m)), fixef = as.list(fixef(m)),
       se = as.list(sqrt(diag(vcov(m)))), sd = as.list(sds[names(sds) != "Residual"]),
       sigma = m$sigma)
}
nlmer_ref <- function(m) {
  vc <- as.data.frame(VarCorr(m))
  sd <- vc$sdcor[vc$grp != "Residual"]
  names(sd) <- vc$var1[vc$grp != "Residual"]
  list(loglik = as.numeric(logLik(m)), fixef = as.list(fixef(m)),
       se = as.list(sqrt(diag(as.matrix(vcov(m))))), sd = as.list(sd), sigma = sigma(m))
}
safe <- function(expr) tryCatch(expr, error = function(e) list(error = conditionMessage(e)))
out <- list()

om <- nlme(circumference ~ SSlogis(age, Asym, xmid, scal), data = Orange,
           fixed = Asym + xmid + scal ~ 1, random = Asym ~ 1 | Tree,
           start = c(Asym = 200, xmid = 700, scal = 350), method = "ML")
onl <- nlmer(circumference ~ SSlogis(age, Asym, xmid, scal) ~ Asym | Tree, Orange,
             start = c(Asym = 200, xmid = 700, scal = 350))
out$Orange <- list(nlme = nlme_ref(om), nlmer = nlmer_ref(onl))

tm <- nlme(conc ~ SSfol(Dose, Time, lKe, lKa, lCl), data = Theoph,
           fixed = lKe + lKa + lCl ~ 1, random = pdDiag(lKe + lKa + lCl ~ 1),
           groups = ~Subject, start = c(lKe = -2.5, lKa = 0.5, lCl = -3), method = "ML")
tnl <- safe(nlmer(conc ~ SSfol(Dose, Time, lKe, lKa, lCl) ~
                    (0 + lKe | Subject) + (0 + lKa | Subject) + (0 + lCl | Subject),
                  Theoph, start = c(lKe = -2.5, lKa = 0.5, lCl = -3)))
out$Theoph <- list(nlme = nlme_ref(tm), nlmer = if (is.list(tnl) && !is.null(tnl$error)) tnl else nlmer_ref(tnl))

DNase1 <- DNase
dm <- nlme(density ~ SSlogis(log(conc), Asym, xmid, scal), data = DNase1,
           fixed = Asym + xmid + scal ~ 1, random = pdDiag(Asym + xmid ~ 1), groups = ~Run,
           start = c(Asym = 2.3, xmid = 1.5, scal = 1), method = "ML")
DNase1$lconc <- log(DNase1$conc)
dnl <- safe(nlmer(density ~ SSlogis(lconc, Asym, xmid, scal) ~ (0 + Asym | Run) + (0 + xmid | Run),
                  DNase1, start = c(Asym = 2.3, xmid = 1.5, scal = 1)))
out$DNase <- list(nlme = nlme_ref(dm), nlmer = if (is.list(dnl) && !is.null(dnl$error)) dnl else nlmer_ref(dnl))

im <- nlme(conc ~ SSbiexp(time, A1, lrc1, A2, lrc2), data = Indometh,
           fixed = A1 + lrc1 + A2 + lrc2 ~ 1, random = pdDiag(A1 + lrc1 + A2 ~ 1), groups = ~Subject,
           start = c(A1 = 2.8, lrc1 = 0.8, A2 = 0.6, lrc2 = -1.3), method = "ML")
inl <- safe(nlmer(conc ~ SSbiexp(time, A1, lrc1, A2, lrc2) ~
                    (0 + A1 | Subject) + (0 + lrc1 | Subject) + (0 + A2 | Subject),
                  Indometh, start = c(A1 = 2.8, lrc1 = 0.8, A2 = 0.6, lrc2 = -1.3)))
out$Indometh <- list(nlme = nlme_ref(im), nlmer = if (is.list(inl) && !is.null(inl$error)) inl else nlmer_ref(inl))

CO2a <- as.data.frame(CO2); CO2a$Plant <- factor(as.character(CO2a$Plant))
cm <- nlme(uptake ~ SSasymp(conc, Asym, R0, lrc), data = CO2a,
           fixed = Asym + R0 + lrc ~ 1, random = Asym ~ 1 | Plant,
           start = c(Asym = 32, R0 = -5, lrc = -4.5), method = "ML")
cnl <- safe(nlmer(uptake ~ SSasymp(conc, Asym, R0, lrc) ~ Asym | Plant, CO2a,
                  start = c(Asym = 32, R0 = -5, lrc = -4.5)))
out$CO2 <- list(nlme = nlme_ref(cm), nlmer = if (is.list(cnl) && !is.null(cnl$error)) cnl else nlmer_ref(cnl))

# a covariate in a parameter's formula: Asym ~ Type (nlme only; nlmer takes none)
ctm <- nlme(uptake ~ SSasymp(conc, Asym, R0, lrc), data = CO2a,
            fixed = list(Asym ~ Type, R0 ~ 1, lrc ~ 1), random = Asym ~ 1 | Plant,
            start = c(32, -8, -5, -4.5), method = "ML")
out$CO2_Type <- list(nlme = nlme_ref(ctm))

# AGQ: nlmer's nAGQ > 1 for Orange (one grouping factor, scalar random effect)
oq <- safe(nlmer(circumference ~ SSlogis(age, Asym, xmid, scal) ~ Asym | Tree, Orange,
                 start = c(Asym = 200, xmid = 700, scal = 350), nAGQ = 9))
out$Orange$nlmer_agq9 <- if (is.list(oq) && !is.null(oq$error)) oq else nlmer_ref(oq)

writeLines(toJSON(out, auto_unbox = TRUE, digits = NA, pretty = TRUE), file.path(here, "nlmm_references.json"))
