# Reference figures from R's survey package for test_estimators_vs_r.py.
#
# Usage: Rscript survey_reference.R data.csv margins.csv out.txt
# data.csv:    one row per respondent (stratum, kommune, gender, ageband, w, N,
#              answer, score, top2, dk); empty = NA.
# margins.csv: variable, level, total (population margins for calibration).
# out.txt:     "name value" lines, values printed with 17 significant digits.
#
# The design matches StratifiedDesign: one-stage stratified, fpc from N,
# lonely strata "adjust" (the Python default); a lonely-"fail" probe is
# reported as a flag.

suppressPackageStartupMessages(library(survey))
args <- commandArgs(trailingOnly = TRUE)
d <- read.csv(args[1], stringsAsFactors = FALSE, na.strings = "")
margins <- read.csv(args[2], stringsAsFactors = FALSE)
out <- file(args[3], "w")

emit <- function(name, value) {
  cat(sprintf("%s %.17g\n", name, value), file = out)
}
emit_stat <- function(prefix, stat) {
  ci <- confint(stat)  # default: normal quantile (df = Inf)
  nm <- names(coef(stat))
  for (i in seq_along(nm)) {
    emit(paste0(prefix, ".", nm[i], ".est"), coef(stat)[i])
    emit(paste0(prefix, ".", nm[i], ".se"), SE(stat)[i])
    emit(paste0(prefix, ".", nm[i], ".lo"), ci[i, 1])
    emit(paste0(prefix, ".", nm[i], ".hi"), ci[i, 2])
  }
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

d$answer <- factor(d$answer)
d$gender <- factor(d$gender)
d$ageband <- factor(d$ageband)

options(survey.lonely.psu = "adjust")
des <- svydesign(ids = ~1, strata = ~stratum, weights = ~w, fpc = ~N, data = d)
emit("degf", degf(des))

emit_stat("score", svymean(~score, des, na.rm = TRUE))
emit_stat("top2", svymean(~top2, des, na.rm = TRUE))
emit_stat("dk", svymean(~dk, des, na.rm = TRUE))
emit_stat("dist", svymean(~answer, des, na.rm = TRUE))
emit_by("score_by_kommune", svyby(~score, ~kommune, des, svymean, na.rm = TRUE), "score")
emit_by("score_by_gender", svyby(~score, ~gender, des, svymean, na.rm = TRUE), "score")
emit_by("top2_by_gender", svyby(~top2, ~gender, des, svymean, na.rm = TRUE), "top2")

# Unweighted figures: equal weights, no strata, no fpc.
plain <- suppressWarnings(svydesign(ids = ~1, data = d))
emit_stat("plain_score", svymean(~score, plain, na.rm = TRUE))
emit_by("plain_score_by_kommune", svyby(~score, ~kommune, plain, svymean, na.rm = TRUE), "score")

# Raking to gender and age-band margins (calibrate with calfun = "raking":
# same weights as IPF, GREG linearisation for the variance).
mm_names <- colnames(model.matrix(~gender + ageband, d))
pop <- sapply(mm_names, function(nm) {
  if (nm == "(Intercept)") return(sum(margins$total[margins$variable == "gender"]))
  row <- paste0(margins$variable, margins$level) == nm
  margins$total[row]
})
raked <- calibrate(des, ~gender + ageband, population = pop, calfun = "raking",
                   epsilon = 1e-13, maxit = 1000)
emit_stat("raked_score", svymean(~score, raked, na.rm = TRUE))
emit_stat("raked_top2", svymean(~top2, raked, na.rm = TRUE))
emit_by("raked_score_by_kommune", svyby(~score, ~kommune, raked, svymean, na.rm = TRUE), "score")
w_raked <- weights(raked)
for (i in seq_along(w_raked)) emit(paste0("raked_w.", i), w_raked[i])

# Post-stratification on age band.
ages <- margins[margins$variable == "ageband", ]
ps <- postStratify(des, ~ageband, data.frame(ageband = ages$level, Freq = ages$total))
emit_stat("ps_score", svymean(~score, ps, na.rm = TRUE))
emit_by("ps_score_by_gender", svyby(~score, ~gender, ps, svymean, na.rm = TRUE), "score")

# R's default lonely-stratum policy refuses the design's lonely stratum.
options(survey.lonely.psu = "fail")
failed <- tryCatch({ svymean(~score, des, na.rm = TRUE); 0 }, error = function(e) 1)
emit("lonely_fail_raises", failed)

close(out)
