"""Our estimators against R's survey package (svymean, svyby, confint, calibrate).

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
from services.analytics.domain.indicators import AGREEMENT_SCALE

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


def assert_matches(ref: dict[str, float], prefix: str, e: Estimate) -> None:
    for suffix, ours in (("est", e.value), ("se", e.se), ("lo", e.ci_low), ("hi", e.ci_high)):
        theirs = ref[f"{prefix}.{suffix}"]
        assert math.isclose(ours, theirs, rel_tol=TOL, abs_tol=TOL), (prefix, suffix, ours, theirs)


def scores(units: list[dict]) -> list[float | None]:
    return [None if (s := score(u)) is None else float(s) for u in units]


def test_design_degrees_of_freedom(reference, design) -> None:
    assert design.degrees_of_freedom == reference["degf"]


def test_overall_mean_shares_and_distribution(reference, design, units) -> None:
    s = scores(units)
    assert_matches(reference, "score.score", design.mean(s))
    assert_matches(
        reference, "top2.top2", design.proportion([None if v is None else v >= 4 for v in s])
    )
    answered = [u["answer"] for u in units]
    assert_matches(
        reference, "dk.dk", design.proportion([None if a is None else a == "Ved ikke" for a in answered])
    )
    for cat in CATEGORIES:
        e = design.proportion([None if a is None else a == cat for a in answered])
        assert_matches(reference, f"dist.answer{cat}", e)


def test_domains_svyby(reference, design, units) -> None:
    s = scores(units)
    for kommune in ("K1", "K2"):  # a union of strata
        dom = [u["kommune"] == kommune for u in units]
        assert_matches(reference, f"score_by_kommune.{kommune}", design.mean(s, dom))
    for gender in ("K", "M"):  # cuts across every stratum
        dom = [u["gender"] == gender for u in units]
        assert_matches(reference, f"score_by_gender.{gender}", design.mean(s, dom))
        top = design.proportion([None if v is None else v >= 4 for v in s], dom)
        assert_matches(reference, f"top2_by_gender.{gender}", top)


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
    assert_matches(
        reference, "raked_top2.top2", raked.proportion([None if v is None else v >= 4 for v in s])
    )
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
