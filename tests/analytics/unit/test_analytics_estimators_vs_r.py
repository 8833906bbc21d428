"""Our estimators against R's survey package (svymean with its design effect, svyby, confint,
svyciprop, calibrate).

Runs ``survey_reference.R`` (beside this file) with Rscript on a generated
stratified data set and compares every figure to 1e-9. Needs R with the
survey and MASS packages (Debian: r-base-core r-cran-survey r-cran-mass);
skipped when Rscript is not on PATH.
"""

from __future__ import annotations

import csv
import math
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from services.analytics.domain.estimators import (
    Estimate,
    LonelyStratumError,
    Margin,
    StratifiedDesign,
    post_stratify,
    rake,
)
from services.analytics.domain.answers import answer_code
from services.analytics.domain.estimators import proportion_interval
from services.analytics.domain.indicators import AGREEMENT_SCALE
from services.analytics.domain.count_estimates import StratumInfo, design_strata, estimate_cells

R_SCRIPT = Path(__file__).with_name("survey_reference.R")
TOL = 1e-9

# (municipality, target group, N_h, n_h): different sizes and sampling
# fractions, one lonely stratum (n = 1) and one fully enumerated (n = N).
STRATA = [
    ("K1", "Dagpenge", 400, 40),
    ("K1", "Sygedagpenge", 250, 12),
    ("K1", "Aktivitetsparate", 90, 1),
    ("K2", "Dagpenge", 1200, 55),
    ("K2", "Sygedagpenge", 30, 30),
    ("K2", "Aktivitetsparate", 600, 25),
]
MARGINS = {
    "gender": {"K": 1300, "M": 1270},
    "ageband": {"18-29": 700, "30-49": 1100, "50+": 770},
}
CATEGORIES = list(AGREEMENT_SCALE.categories)


def make_units(seed: int = 20240817) -> list[dict]:
    rng = random.Random(seed)
    units = []
    for kommune, group, big_n, n in STRATA:
        for _ in range(n):
            answer = rng.choices(CATEGORIES + [None], weights=[1, 2, 3, 5, 4, 1.2, 0.6])[0]
            if n == 1:
                answer = "Enig"  # the lonely unit must count, to probe "fail"
            units.append(
                {
                    "stratum": f"{kommune}-{group}",
                    "kommune": kommune,
                    "gender": rng.choice("KM"),
                    "ageband": rng.choice(list(MARGINS["ageband"])),
                    "N": big_n,
                    "n": n,
                    "answer": answer,
                }
            )
    return units


def score(u: dict) -> int | None:
    return None if u["answer"] is None else AGREEMENT_SCALE.score(u["answer"])


def write_inputs(units: list[dict], folder: Path) -> tuple[Path, Path]:
    data = folder / "data.csv"
    with data.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["stratum", "kommune", "gender", "ageband", "w", "N", "answer", "score", "top2", "dk"])
        for u in units:
            s = score(u)
            w.writerow(
                [
                    u["stratum"],
                    u["kommune"],
                    u["gender"],
                    u["ageband"],
                    repr(u["N"] / u["n"]),
                    u["N"],
                    u["answer"] or "",
                    "" if s is None else s,
                    "" if s is None else int(s >= 4),
                    "" if u["answer"] is None else int(u["answer"] == "Ved ikke"),
                ]
            )
    margins = folder / "margins.csv"
    with margins.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["variable", "level", "total"])
        for var, totals in MARGINS.items():
            for level, total in totals.items():
                w.writerow([var, level, total])
    return data, margins


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    rscript = shutil.which("Rscript")
    if rscript is None:
        pytest.skip("Rscript is not on PATH (apt-get install r-base-core r-cran-survey r-cran-mass)")
    folder = tmp_path_factory.mktemp("rsurvey")
    data, margins = write_inputs(make_units(), folder)
    out = folder / "out.txt"
    proc = subprocess.run(
        [rscript, "--vanilla", str(R_SCRIPT), str(data), str(margins), str(out)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr
    figures: dict[str, float] = {}
    for line in out.read_text().splitlines():
        name, value = line.rsplit(" ", 1)
        figures[name] = float(value)
    return figures


@pytest.fixture(scope="module")
def units() -> list[dict]:
    return make_units()


@pytest.fixture(scope="module")
def design(units: list[dict]) -> StratifiedDesign:
    return StratifiedDesign(
        [u["stratum"] for u in units],
        [u["N"] / u["n"] for u in units],
        {u["stratum"]: u["N"] for u in units},
        lonely="adjust",
    )


def assert_matches(ref: dict[str, float], prefix: str, e: Estimate, *, interval: bool = True) -> None:
    """Estimate and SE against svymean's, and (``interval``) the interval against confint's:
    a mean's interval. A proportion's interval is svyciprop's (assert_logit_interval)."""
    pairs = [("est", e.value), ("se", e.se)] + ([("lo", e.ci_low), ("hi", e.ci_high)] if interval else [])
    for suffix, ours in pairs:
        theirs = ref[f"{prefix}.{suffix}"]
        assert math.isclose(ours, theirs, rel_tol=TOL, abs_tol=TOL), (prefix, suffix, ours, theirs)


def assert_logit_interval(ref: dict[str, float], prefix: str, low: float, high: float) -> None:
    """A proportion's interval against svyciprop(method = "xlogit", df = Inf) to 1e-9, and
    against method = "logit" (the same interval through svyglm, whose IRLS stops at glm's
    convergence tolerance) to 1e-7."""
    for method, tol in (("xlogit", TOL), ("logit", 1e-7)):
        for suffix, ours in (("lo", low), ("hi", high)):
            theirs = ref[f"{prefix}.{method}.{suffix}"]
            assert math.isclose(ours, theirs, rel_tol=tol, abs_tol=tol), (prefix, method, suffix, ours, theirs)


def assert_deff(ref: dict[str, float], name: str, e: Estimate) -> None:
    theirs = ref[f"{name}.deff"]
    assert e.deff is not None and math.isclose(e.deff, theirs, rel_tol=TOL), (name, e.deff, theirs)
    assert math.isclose(e.n_effective, e.n / theirs, rel_tol=TOL)


def scores(units: list[dict]) -> list[float | None]:
    return [None if (s := score(u)) is None else float(s) for u in units]


def test_design_degrees_of_freedom(reference, design) -> None:
    assert design.degrees_of_freedom == reference["degf"]


def test_overall_mean_shares_and_distribution(reference, design, units) -> None:
    s = scores(units)
    mean = design.mean(s)
    assert_matches(reference, "score.score", mean)
    assert_deff(reference, "score.score", mean)
    top2 = design.proportion([None if v is None else v >= 4 for v in s])
    assert_matches(reference, "top2.top2", top2, interval=False)
    assert_logit_interval(reference, "ciprop.top2", top2.ci_low, top2.ci_high)
    assert_deff(reference, "top2.top2", top2)
    answered = [u["answer"] for u in units]
    dk = design.proportion([None if a is None else a == "Ved ikke" for a in answered])
    assert_matches(reference, "dk.dk", dk, interval=False)
    assert_logit_interval(reference, "ciprop.dk", dk.ci_low, dk.ci_high)
    for cat in CATEGORIES:
        e = design.proportion([None if a is None else a == cat for a in answered])
        assert_matches(reference, f"dist.answer{cat}", e, interval=False)
        assert_logit_interval(reference, f"ciprop.dist.{cat}", e.ci_low, e.ci_high)
        assert_deff(reference, f"dist.answer{cat}", e)


def test_domains_svyby(reference, design, units) -> None:
    s = scores(units)
    for kommune in ("K1", "K2"):  # a union of strata
        dom = [u["kommune"] == kommune for u in units]
        mean = design.mean(s, dom)
        assert_matches(reference, f"score_by_kommune.{kommune}", mean)
        assert_deff(reference, f"score_by_kommune.{kommune}", mean)
        top = design.proportion([None if v is None else v >= 4 for v in s], dom)
        assert_deff(reference, f"top2_by_kommune.{kommune}", top)
        assert_logit_interval(reference, f"ciprop.top2_by_kommune.{kommune}", top.ci_low, top.ci_high)
    for gender in ("K", "M"):  # cuts across every stratum
        dom = [u["gender"] == gender for u in units]
        mean = design.mean(s, dom)
        assert_matches(reference, f"score_by_gender.{gender}", mean)
        assert_deff(reference, f"score_by_gender.{gender}", mean)
        top = design.proportion([None if v is None else v >= 4 for v in s], dom)
        assert_matches(reference, f"top2_by_gender.{gender}", top, interval=False)
        assert_logit_interval(reference, f"ciprop.top2_by_gender.{gender}", top.ci_low, top.ci_high)


def test_published_figures_from_counts(reference, units) -> None:
    """What the tables publish, computed from the answer counts per stratum as the publication
    does (estimate_cells), against R: a municipality's mean and "ved ikke" share with their
    standard errors, intervals (the mean's confint, the share's svyciprop), design effects,
    effective sample sizes and the population their bases speak for."""
    strata = {}
    for u in units:
        strata[u["stratum"]] = StratumInfo(u["kommune"], u["stratum"], u["n"], u["N"])
    design = design_strata(strata)
    for kommune in ("K1", "K2"):
        cell: dict[str, dict[str, int]] = {}
        for u in units:
            if u["kommune"] == kommune:
                codes = cell.setdefault(u["stratum"], {})
                if u["answer"] is not None:
                    code = answer_code(u["answer"])
                    codes[code] = codes.get(code, 0) + 1
        (row,) = estimate_cells([cell], design)
        for ind, name, variable in (("mean", "score_by_kommune", "score"), ("dont_know_share", "dk_by_kommune", "dk")):
            prefix = f"{name}.{kommune}"
            for suffix, key in (("", "est"), ("_se", "se")):
                assert math.isclose(row[f"{ind}{suffix}"], reference[f"{prefix}.{key}"], rel_tol=TOL, abs_tol=TOL), (prefix, key)
            if ind == "mean":
                for suffix, key in (("_ci_low", "lo"), ("_ci_high", "hi")):
                    assert math.isclose(row[f"{ind}{suffix}"], reference[f"{prefix}.{key}"], rel_tol=TOL), (prefix, key)
            else:
                assert_logit_interval(reference, f"ciprop.{prefix}", row[f"{ind}_ci_low"], row[f"{ind}_ci_high"])
            deff = reference[f"{prefix}.deff"]
            assert math.isclose(row[f"{ind}_deff"], deff, rel_tol=TOL), (prefix, row[f"{ind}_deff"], deff)
            base = row["n_valid"] if ind == "mean" else row["n_answers"]
            assert math.isclose(row[f"{ind}_n_effective"], base / deff, rel_tol=TOL)
            population = reference[f"population.{variable}_by_kommune.{kommune}"]
            assert math.isclose(row[f"{ind}_population"], population, rel_tol=TOL), (prefix, population)


def test_a_share_of_0_or_1_has_the_exact_interval(reference) -> None:
    """Where the logit does not exist, the interval is binom.test's for 0 (or n) out of n."""
    for n in (5, 17, 120):
        low, high = proportion_interval(0.0, 0.0, n)
        assert low == 0.0 and math.isclose(high, reference[f"exact0.{n}.hi"], rel_tol=TOL)
        low, high = proportion_interval(1.0, 0.0, n)
        assert high == 1.0 and math.isclose(low, reference[f"exact1.{n}.lo"], rel_tol=TOL)


def test_unweighted(reference, design, units) -> None:
    plain = design.unweighted()
    s = scores(units)
    assert_matches(reference, "plain_score.score", plain.mean(s))
    for kommune in ("K1", "K2"):
        dom = [u["kommune"] == kommune for u in units]
        assert_matches(reference, f"plain_score_by_kommune.{kommune}", plain.mean(s, dom))


def test_raking_matches_calibrate(reference, design, units) -> None:
    raked = rake(
        design,
        [
            Margin([u["gender"] for u in units], MARGINS["gender"]),
            Margin([u["ageband"] for u in units], MARGINS["ageband"]),
        ],
    )
    for i, w in enumerate(raked.weights, start=1):
        assert math.isclose(w, reference[f"raked_w.{i}"], rel_tol=TOL)
    s = scores(units)
    assert_matches(reference, "raked_score.score", raked.mean(s))
    assert_deff(reference, "raked_score.score", raked.mean(s))
    top2 = raked.proportion([None if v is None else v >= 4 for v in s])
    assert_matches(reference, "raked_top2.top2", top2, interval=False)
    assert_logit_interval(reference, "ciprop.raked_top2", top2.ci_low, top2.ci_high)
    for kommune in ("K1", "K2"):
        dom = [u["kommune"] == kommune for u in units]
        assert_matches(reference, f"raked_score_by_kommune.{kommune}", raked.mean(s, dom))


def test_post_stratification_matches_poststratify(reference, design, units) -> None:
    ps = post_stratify(design, [u["ageband"] for u in units], MARGINS["ageband"])
    s = scores(units)
    assert_matches(reference, "ps_score.score", ps.mean(s))
    for gender in ("K", "M"):
        dom = [u["gender"] == gender for u in units]
        assert_matches(reference, f"ps_score_by_gender.{gender}", ps.mean(s, dom))


def test_lonely_fail_agrees_with_r(reference, units) -> None:
    assert reference["lonely_fail_raises"] == 1
    strict = StratifiedDesign(
        [u["stratum"] for u in units],
        [u["N"] / u["n"] for u in units],
        {u["stratum"]: u["N"] for u in units},
        lonely="fail",
    )
    with pytest.raises(LonelyStratumError):
        strict.mean(scores(units))
