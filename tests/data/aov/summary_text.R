# R's printed summary(aov) of the three references, for the text layout test.
# Run: Rscript summary_text.R
library(jsonlite)
for (name in c("npk", "Pastes", "Dyestuff2")) {
  ref <- fromJSON(paste0("anova_", name, ".json"))
  d <- read.csv(ref$data_file, colClasses = "character")
  for (v in names(d)) if (!(v %in% names(ref$factors))) d[[v]] <- as.numeric(d[[v]])
  for (v in names(ref$factors)) d[[v]] <- factor(d[[v]], levels = ref$factors[[v]])
  out <- capture.output(summary(aov(as.formula(ref$aov_formula), data = d)))
  writeLines(out, paste0("summary_", name, ".txt"))
}
