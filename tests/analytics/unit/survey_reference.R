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

# Design effects (svymean's deff = TRUE: against simple random sampling without replacement
# from the estimated population), overall and in domains.
emit_deff <- function(prefix, stat) {
  d <- deff(stat)
  nm <- names(coef(stat))
  for (i in seq_along(nm)) emit(paste0(prefix, ".", nm[i], ".deff"), d[i])
}
emit_by_deff <- function(prefix, by_result) {
  d <- deff(by_result)
  lev <- as.character(by_result[[1]])
  for (i in seq_along(lev)) emit(paste0(prefix, ".", lev[i], ".deff"), d[i])
}
emit_deff("score", svymean(~score, des, na.rm = TRUE, deff = TRUE))
emit_deff("top2", svymean(~top2, des, na.rm = TRUE, deff = TRUE))
emit_deff("dist", svymean(~answer, des, na.rm = TRUE, deff = TRUE))
emit_by_deff("score_by_kommune", svyby(~score, ~kommune, des, svymean, na.rm = TRUE, deff = TRUE))
emit_by_deff("top2_by_kommune", svyby(~top2, ~kommune, des, svymean, na.rm = TRUE, deff = TRUE))
emit_by_deff("score_by_gender", svyby(~score, ~gender, des, svymean, na.rm = TRUE, deff = TRUE))
emit_deff("raked_score", svymean(~score, raked, na.rm = TRUE, deff = TRUE))
# The population each domain's estimate speaks for: the summed weights of its base.
for (k in unique(d$kommune)) {
  inside <- d$kommune == k
  emit(paste0("population.score_by_kommune.", k), sum(weights(des)[inside & !is.na(d$score)]))
  emit(paste0("population.dk_by_kommune.", k), sum(weights(des)[inside & !is.na(d$dk)]))
}
emit_by_deff("dk_by_kommune", svyby(~dk, ~kommune, des, svymean, na.rm = TRUE, deff = TRUE))
emit_by("dk_by_kommune", svyby(~dk, ~kommune, des, svymean, na.rm = TRUE), "dk")

# Proportions' intervals: svyciprop's logit interval with the normal quantile (df = Inf), as
# "xlogit" (the delta method on the mean, closed form) and "logit" (svyglm's intercept, whose
# IRLS stops at glm's convergence tolerance), overall and in domains; each answer category as
# its own 0/1 variable.
emit_ciprop <- function(prefix, formula, design) {
  for (method in c("xlogit", "logit")) {
    ci <- attr(svyciprop(formula, design, method = method, df = Inf, na.rm = TRUE), "ci")
    emit(paste0(prefix, ".", method, ".lo"), ci[1])
    emit(paste0(prefix, ".", method, ".hi"), ci[2])
  }
}
emit_ciprop("ciprop.top2", ~top2, des)
emit_ciprop("ciprop.raked_top2", ~top2, raked)
for (k in unique(d$kommune)) emit_ciprop(paste0("ciprop.dk_by_kommune.", k), ~dk, subset(des, kommune == k))
emit_ciprop("ciprop.dk", ~dk, des)
for (k in unique(d$kommune)) emit_ciprop(paste0("ciprop.top2_by_kommune.", k), ~top2, subset(des, kommune == k))
for (g in levels(d$gender)) emit_ciprop(paste0("ciprop.top2_by_gender.", g), ~top2, subset(des, gender == g))
for (cat in levels(d$answer)) {
  d[[paste0("is_", make.names(cat))]] <- ifelse(is.na(d$answer), NA, as.numeric(d$answer == cat))
}
des_cat <- svydesign(ids = ~1, strata = ~stratum, weights = ~w, fpc = ~N, data = d)
for (cat in levels(d$answer)) {
  emit_ciprop(paste0("ciprop.dist.", cat), as.formula(paste0("~is_", make.names(cat))), des_cat)
}
# A share of 0 (and of 1): the exact interval of 0 (n) out of n.
for (n in c(5, 17, 120)) {
  ci <- binom.test(0, n)$conf.int
  emit(paste0("exact0.", n, ".hi"), ci[2])
  ci <- binom.test(n, n)$conf.int
  emit(paste0("exact1.", n, ".lo"), ci[1])
}

# R's default lonely-stratum policy refuses the design's lonely stratum.
options(survey.lonely.psu = "fail")
failed <- tryCatch({ svymean(~score, des, na.rm = TRUE); 0 }, error = function(e) 1)
emit("lonely_fail_raises", failed)

close(out)
