# Reference figures from R's survey package for test_analytics_calibration_vs_r.py.
#
# Usage: Rscript calibration_reference.R data.csv population.csv lower upper out.txt
# data.csv:       one row per respondent: stratum, kommune, maalgruppe, w, N, score, top2 (empty = NA)
#                 and one 0/1 column per calibration category (c1, c2, ...).
# population.csv: name, total (the population count of each category column).
# out.txt:        "name value" lines, values printed with 17 significant digits.
#
# The design is the publication's: one-stage stratified, weights N_h / n_h, fpc from N. It is
# raked with calibrate(calfun = "raking", bounds = c(lower, upper)) to the categories (which are
# redundant within a municipality: grake's generalised inverse and qr's pivoting handle that),
# then every figure under each lonely-stratum rule, calibrated and design-weighted.

suppressPackageStartupMessages(library(survey))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], stringsAsFactors = FALSE, na.strings = "")
pop <- read.csv(args[2], stringsAsFactors = FALSE)
lower <- as.numeric(args[3])
upper <- as.numeric(args[4])
out <- file(args[5], "w")

emit <- function(name, value) cat(sprintf("%s %.17g\n", name, value), file = out)
emit_stat <- function(prefix, stat) {
  ci <- confint(stat)
  emit(paste0(prefix, ".est"), coef(stat)[1])
  emit(paste0(prefix, ".se"), SE(stat)[1])
  emit(paste0(prefix, ".lo"), ci[1, 1])
  emit(paste0(prefix, ".hi"), ci[1, 2])
}
emit_by <- function(prefix, by_result, var) {
  ci <- confint(by_result)
  lev <- as.character(by_result[[1]])
  for (i in seq_along(lev)) {
    emit(paste0(prefix, ".", lev[i], ".est"), by_result[[var]][i])
    emit(paste0(prefix, ".", lev[i], ".se"), SE(by_result)[i])
    emit(paste0(prefix, ".", lev[i], ".lo"), ci[i, 1])
    emit(paste0(prefix, ".", lev[i], ".hi"), ci[i, 2])
  }
}
figures <- function(prefix, des) {
  for (var in c("score", "top2")) {
    f <- as.formula(paste0("~", var))
    emit_stat(paste0(prefix, ".", var, ".national"), svymean(f, des, na.rm = TRUE))
    for (by in c("kommune", "maalgruppe", "stratum")) {
      emit_by(paste0(prefix, ".", var, ".", by), svyby(f, as.formula(paste0("~", by)), des, svymean, na.rm = TRUE), var)
    }
  }
}

des <- svydesign(ids = ~1, strata = ~stratum, weights = ~w, fpc = ~N, data = d)
categories <- pop$name
population <- setNames(pop$total, categories)
cal <- calibrate(des, as.formula(paste("~0 +", paste(categories, collapse = " + "))), population = population,
                 calfun = "raking", bounds = c(lower, upper), epsilon = 1e-12, maxit = 50)
g <- weights(cal) / weights(des)
emit("g_min", min(g))
emit("g_max", max(g))
w <- weights(cal)
for (i in seq_along(w)) emit(paste0("w.", i), w[i])
for (rule in c("adjust", "certainty", "average")) {
  options(survey.lonely.psu = rule)
  figures(paste0("cal.", rule), cal)
  figures(paste0("design.", rule), des)
}
close(out)
