"""Calibrated estimates against R's survey package: calibrate(calfun = "raking", bounds = ...)
then svymean/svyby, to 1e-9, under each lonely-stratum rule (and the design-weighted figures
under each rule too).

Runs ``calibration_reference.R`` (beside this file) with Rscript on a generated round: three
municipalities x two target groups, response depending on age and gender, one lonely stratum
and one fully enumerated one. Needs R with the survey package (Debian: r-base-core
r-cran-survey); skipped when Rscript is not on PATH.
"""

from __future__ import annotations

import csv
import math
import random
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from services.analytics.domain.answers import CODES
from services.analytics.domain.calibration import (
    DEFAULT_MARGINS,
    LONELY_RULES,
    CalibrationSpec,
    RespondentCell,
    calibrate,
    estimate,
)
from services.analytics.domain.count_estimates import StratumInfo, design_strata, estimate_cells
from services.analytics.domain.estimators import proportion_interval

R_SCRIPT = Path(__file__).with_name("calibration_reference.R")
TOL = 1e-9
KOMMUNER = ("101", "147", "751")
GROUPS = ("dagpenge", "aktivitetsparate")
AGES = ("18-29", "30-49", "50+")
DURATIONS = ("<6", "6+")
BOUNDS = (0.05, 2.5)
# (kommune, group) -> (N, n); one lonely stratum and one census stratum
SIZES = {
    ("101", "dagpenge"): (900, 70),
    ("101", "aktivitetsparate"): (400, 45),
    ("147", "dagpenge"): (300, 40),
    ("147", "aktivitetsparate"): (40, 1),
    ("751", "dagpenge"): (1500, 80),
    ("751", "aktivitetsparate"): (14, 14),
}


def propensity(gender: str, age: str) -> float:
    """Older women answer most, young men least."""
    return (1.3 if gender == "K" else 1.0) * (1.0, 1.4, 2.0)[AGES.index(age)]


def make_round(seed: int = 20261207):
    """Units (respondents, with bands and an answer code or None) and population counts."""
    rng = random.Random(seed)
    units, population = [], Counter()
    for (k, g), (big_n, n) in SIZES.items():
        if n == 1:  # a lonely stratum: its population in one gender and age band, so it can be raked
            frame = [("K", "50+", rng.choice(DURATIONS)) for _ in range(big_n)]
        else:
            frame = [(rng.choice("KM"), rng.choice(AGES), rng.choice(DURATIONS)) for _ in range(big_n)]
        for bands in frame:
            population[(k, g, *bands)] += 1
        chosen: list[int] = []
        pool = list(range(big_n))
        while len(chosen) < n:  # draws without replacement, by propensity
            i = rng.choices(pool, [propensity(*frame[j][:2]) for j in pool])[0]
            pool.remove(i)
            chosen.append(i)
        for i in chosen:
            gender, age, duration = frame[i]
            tilt = 0.5 * AGES.index(age) + (0.4 if gender == "K" else 0.0)
            code = rng.choices(list(CODES) + [None], [1, 1.5, 2, 3 + tilt, 2 + 2 * tilt, 0.8, 0.5])[0]
            if n == 1:
                code = "4"  # the lonely unit must count
            units.append({"stratum": f"{k}:{g}", "kommune": k, "maalgruppe": g, "gender": gender, "age": age,
                          "duration": duration, "N": big_n, "n": n, "code": code})
    return units, population


def cells_of(units):
    keys = sorted({(u["stratum"], u["kommune"], u["maalgruppe"], u["gender"], u["age"], u["duration"]) for u in units})
    position = {key: i for i, key in enumerate(keys)}
    respondents = Counter((u["stratum"], u["kommune"], u["maalgruppe"], u["gender"], u["age"], u["duration"]) for u in units)
    counts = np.zeros((len(keys), len(CODES)))
    for u in units:
        if u["code"] is not None:
            counts[position[(u["stratum"], u["kommune"], u["maalgruppe"], u["gender"], u["age"], u["duration"])], CODES.index(u["code"])] += 1
    cells = [RespondentCell(*key, respondents=respondents[key]) for key in keys]
    return cells, counts, position


def categories(units, population):
    """The calibration categories per municipality (as calibrate builds them) as 0/1 columns."""
    names, totals, member = [], [], []
    for k in KOMMUNER:
        seen = {}
        for (kk, g, gender, age, duration), count in sorted(population.items()):
            if kk != k:
                continue
            values = {"maalgruppe": g, "gender": gender, "age_band": age, "duration_band": duration}
            for m, margin in enumerate(DEFAULT_MARGINS):
                cat = (m, *(values[v] for v in margin))
                seen[cat] = seen.get(cat, 0) + count
        for cat, total in sorted(seen.items()):
            names.append(f"c{len(names) + 1}")
            totals.append(total)
            member.append((k, cat))
    return names, totals, member


def unit_category_flags(u, member):
    values = {"maalgruppe": u["maalgruppe"], "gender": u["gender"], "age_band": u["age"], "duration_band": u["duration"]}
    mine = {(u["kommune"], (m, *(values[v] for v in margin))) for m, margin in enumerate(DEFAULT_MARGINS)}
    return [1 if key in mine else 0 for key in member]


@pytest.fixture(scope="module")
def generated():
    return make_round()


def run_r(units, population, bounds, folder: Path) -> dict[str, float]:
    """R's figures (calibration_reference.R) for the units and population; skips without R."""
    rscript = shutil.which("Rscript")
    if rscript is None:
        pytest.skip("Rscript is not on PATH (apt-get install r-base-core r-cran-survey)")
    names, totals, member = categories(units, population)
    with (folder / "data.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["stratum", "kommune", "maalgruppe", "w", "N", "score", "top2", *names])
        for u in units:
            scored = u["code"] not in (None, "dk")
            w.writerow([u["stratum"], u["kommune"], u["maalgruppe"], repr(u["N"] / u["n"]), u["N"],
                        u["code"] if scored else "", int(u["code"] in ("4", "5")) if scored else "",
                        *unit_category_flags(u, member)])
    with (folder / "population.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["name", "total"])
        w.writerows(zip(names, totals))
    out = folder / "out.txt"
    proc = subprocess.run(
        [rscript, "--vanilla", str(R_SCRIPT), str(folder / "data.csv"), str(folder / "population.csv"),
         repr(bounds[0]), repr(bounds[1]), str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return {name: float(value) for name, value in (line.rsplit(" ", 1) for line in out.read_text().splitlines())}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, generated) -> dict[str, float]:
    units, population = generated
    return run_r(units, population, BOUNDS, tmp_path_factory.mktemp("rcalibration"))


@pytest.fixture(scope="module")
def calibrated(generated):
    units, population = generated
    cells, counts, _ = cells_of(units)
    sizes = {f"{k}:{g}": big_n for (k, g), (big_n, _) in SIZES.items()}
    cal = calibrate(cells, sizes, [(*key, n) for key, n in population.items()], CalibrationSpec(lower=BOUNDS[0], upper=BOUNDS[1]))
    return cal, counts


def domains(cal):
    """(name, cells in it) for the national total and every kommune, target group and stratum."""
    out = [("national", np.ones(len(cal.cells), dtype=bool))]
    for by, attr in (("kommune", "kommunekode"), ("maalgruppe", "maalgruppe"), ("stratum", "stratum")):
        for level in sorted({getattr(c, attr) for c in cal.cells}):
            out.append((f"{by}.{level}", np.array([getattr(c, attr) == level for c in cal.cells])))
    return out


def test_the_round_is_raked_everywhere_and_the_bounds_bite(reference, calibrated):
    cal, _ = calibrated
    assert cal.problems == [] and cal.calibrated == list(KOMMUNER)
    assert math.isclose(cal.g.min(), reference["g_min"], rel_tol=TOL) and math.isclose(cal.g.max(), reference["g_max"], rel_tol=TOL)
    assert math.isclose(cal.g.min(), BOUNDS[0], rel_tol=1e-12) or math.isclose(cal.g.max(), BOUNDS[1], rel_tol=1e-12)


def test_calibrated_weights_equal_r(reference, generated, calibrated):
    units, _ = generated
    cal, _ = calibrated
    _, _, position = cells_of(units)
    for i, u in enumerate(units, start=1):
        c = position[(u["stratum"], u["kommune"], u["maalgruppe"], u["gender"], u["age"], u["duration"])]
        assert math.isclose(cal.weight[c], reference[f"w.{i}"], rel_tol=TOL), i


@pytest.mark.parametrize("lonely", LONELY_RULES)
@pytest.mark.parametrize("weights", ["cal", "design"])
def test_estimates_ses_and_intervals_equal_r(reference, calibrated, lonely, weights):
    cal, counts = calibrated
    named = domains(cal)
    mask = np.stack([m for _, m in named], axis=1)
    checked = 0
    for r_name, indicator in (("score", "mean"), ("top2", "top2_share")):
        figures = estimate(cal, counts, mask, indicator, lonely=lonely, calibrated=weights == "cal")
        for j, (name, _) in enumerate(named):
            prefix = f"{weights}.{lonely}.{r_name}.{name}"
            for suffix, ours in (("est", figures.value[j]), ("se", figures.se[j]), ("lo", figures.ci_low[j]), ("hi", figures.ci_high[j])):
                theirs = reference[f"{prefix}.{suffix}"]
                if math.isnan(theirs):  # "average" over a domain of lonely strata only: no variance
                    assert math.isnan(ours) and lonely == "average", (prefix, suffix, ours)
                else:
                    assert math.isclose(ours, theirs, rel_tol=TOL, abs_tol=TOL), (prefix, suffix, ours, theirs)
                checked += 1
    assert checked == 2 * 4 * (1 + len(KOMMUNER) + len(GROUPS) + len(SIZES))


@pytest.mark.parametrize("lonely", LONELY_RULES)
def test_published_design_weighted_figures_follow_the_lonely_rule_as_r(reference, generated, lonely):
    """The publication's weighted figures (publication.estimate_cells, the tables' estimator) under
    each lonely-stratum rule equal R's svymean/svyby with options(survey.lonely.psu = rule)."""
    units, _ = generated
    by_stratum: dict[str, Counter] = {}
    respondents = Counter(u["stratum"] for u in units)
    for u in units:
        by_stratum.setdefault(u["stratum"], Counter())
        if u["code"] is not None:
            by_stratum[u["stratum"]][u["code"]] += 1
    strata = {h: StratumInfo(h.split(":")[0], h.split(":")[1], respondents[h], SIZES[tuple(h.split(":"))][0]) for h in by_stratum}
    design = design_strata(strata)
    domains = {"national": list(strata)}
    for k in KOMMUNER:
        domains[f"kommune.{k}"] = [h for h in strata if h.startswith(f"{k}:")]
    for g in GROUPS:
        domains[f"maalgruppe.{g}"] = [h for h in strata if h.endswith(f":{g}")]
    for h in strata:
        domains[f"stratum.{h}"] = [h]
    cells = estimate_cells([{h: dict(by_stratum[h]) for h in members} for members in domains.values()], design, lonely)
    for (name, _), figures in zip(domains.items(), cells):
        for r_var, ind in (("score", "mean"), ("top2", "top2_share")):
            for suffix, r_suffix in (("", "est"), ("_se", "se"), ("_ci_low", "lo"), ("_ci_high", "hi")):
                theirs = reference[f"design.{lonely}.{r_var}.{name}.{r_suffix}"]
                ours = figures[f"{ind}{suffix}"]
                if ind == "top2_share" and suffix in ("_ci_low", "_ci_high"):
                    # A share's interval is the logit one (svyciprop(method = "logit", df = Inf)) of
                    # R's estimate and SE, where the share is inside 0-1 (at 0 or 1 the exact
                    # interval, which needs no SE: test_analytics_estimators_vs_r).
                    est = reference[f"design.{lonely}.{r_var}.{name}.est"]
                    se = reference[f"design.{lonely}.{r_var}.{name}.se"]
                    if not 0 < est < 1:
                        continue
                    if not math.isnan(se):
                        theirs = proportion_interval(est, se, 1)[0 if suffix == "_ci_low" else 1]
                if math.isnan(theirs):
                    assert lonely == "average" and (ours is None or math.isnan(ours)), (name, ind, suffix, ours)
                else:
                    assert math.isclose(ours, theirs, rel_tol=TOL, abs_tol=TOL), (lonely, name, ind, suffix, ours, theirs)
