"""Calibration's rules without R: the raked weights reproduce the frame's margins, stay in their
bounds, equal the unit-level raking of estimators.rake; a municipality that cannot be raked is
reported and keeps its design weights; a bad specification is refused."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.analytics.domain.answers import CODES
from services.analytics.domain.calibration import (
    CalibrationSpec,
    CalibrationSpecError,
    RespondentCell,
    calibrate,
    estimate,
)
from services.analytics.domain.estimators import Margin, StratifiedDesign, rake

GROUPS = ("a", "b")
AGES = ("y", "m", "o")
DURATIONS = ("s", "l")


def round_of(seed: int, kommuner=("1", "2"), n=(25, 60)):
    """Respondent cells and population counts where every category has respondents."""
    rng = random.Random(seed)
    respondents: Counter = Counter()
    population: Counter = Counter()
    sizes = {}
    for k in kommuner:
        for g in GROUPS:
            big_n = rng.randint(200, 900)
            sizes[f"{k}:{g}"] = big_n
            for _ in range(big_n):
                population[(k, g, rng.choice("KM"), rng.choice(AGES), rng.choice(DURATIONS))] += 1
            cells = list(c for c in population if c[:2] == (k, g))
            for _ in range(rng.randint(*n)):
                respondents[rng.choice(cells)] += 1
            # every gender and age band of the stratum, every duration band of the municipality
            for gender in "KM":
                respondents[next(c for c in cells if c[2] == gender)] += 1
            for age in AGES:
                respondents[next(c for c in cells if c[3] == age)] += 1
            for duration in DURATIONS:
                respondents[next(c for c in cells if c[4] == duration)] += 1
    cells = [RespondentCell(f"{k}:{g}", k, g, gender, age, duration, r) for (k, g, gender, age, duration), r in sorted(respondents.items())]
    return cells, sizes, [(*key, n) for key, n in population.items()]


def margin_totals(cal, population, weights):
    got, want = defaultdict(float), defaultdict(float)
    for m, margin in enumerate(cal.spec.margins):
        for c, w in zip(cal.cells, weights):
            got[(c.kommunekode, m, *(c.value(v) for v in margin))] += w * c.respondents
        for k, g, gender, age, duration, n in population:
            values = {"maalgruppe": g, "gender": gender, "age_band": age, "duration_band": duration}
            want[(k, m, *(values[v] for v in margin))] += n
    return got, want


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_raked_weights_reproduce_every_margin_and_keep_stratum_totals(seed):
    cells, sizes, population = round_of(seed)
    cal = calibrate(cells, sizes, population, CalibrationSpec(lower=-math.inf, upper=math.inf))
    assert cal.problems == []
    got, want = margin_totals(cal, population, cal.weight)
    assert set(got) == set(want)
    for key, total in want.items():
        assert math.isclose(got[key], total, rel_tol=1e-10), key
    # target group x gender sums to the stratum: the design weights' N_h stays
    for h, big_n in sizes.items():
        assert math.isclose(sum(w * c.respondents for c, w in zip(cal.cells, cal.weight) if c.stratum == h), big_n, rel_tol=1e-10)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), lower=st.sampled_from([0.3, 0.5, 0.7]), upper=st.sampled_from([1.5, 2.0, 3.0]))
def test_bounded_weights_stay_in_bounds_or_the_municipality_is_reported(seed, lower, upper):
    cells, sizes, population = round_of(seed)
    cal = calibrate(cells, sizes, population, CalibrationSpec(lower=lower, upper=upper))
    reported = {p.kommunekode for p in cal.problems}
    assert reported | set(cal.calibrated) == {"1", "2"} and not reported & set(cal.calibrated)
    for c, g in zip(cal.cells, cal.g):
        if c.kommunekode in reported:
            assert g == 1.0  # left at its design weights
        else:
            assert lower - 1e-12 <= g <= upper + 1e-12
    got, want = margin_totals(cal, population, cal.weight)
    for key, total in want.items():
        if key[0] not in reported:
            assert math.isclose(got[key], total, rel_tol=1e-9), key


def test_cell_level_raking_equals_unit_level_rake_and_its_variance():
    """Without bounds, the cells' figures are estimators.StratifiedDesign + rake on the units."""
    cells, sizes, population = round_of(7)
    cal = calibrate(cells, sizes, population, CalibrationSpec(lower=-math.inf, upper=math.inf))
    rng = random.Random(3)
    counts = np.zeros((len(cells), len(CODES)))
    units = []
    for i, c in enumerate(cells):
        for _ in range(c.respondents):
            code = rng.choice(list(CODES) + [None])
            units.append((c, code))
            if code is not None:
                counts[i, CODES.index(code)] += 1
    design = StratifiedDesign([c.stratum for c, _ in units], population_sizes=sizes)
    totals = defaultdict(float)
    for k, g, gender, age, duration, n in population:
        totals[("mg", k, g, gender)] += n
        totals[("ma", k, g, age)] += n
        totals[("d", k, duration)] += n
    raked = rake(design, [
        Margin([("mg", c.kommunekode, c.maalgruppe, c.gender) for c, _ in units], {k: v for k, v in totals.items() if k[0] == "mg"}),
        Margin([("ma", c.kommunekode, c.maalgruppe, c.age_band) for c, _ in units], {k: v for k, v in totals.items() if k[0] == "ma"}),
        Margin([("d", c.kommunekode, c.duration_band) for c, _ in units], {k: v for k, v in totals.items() if k[0] == "d"}),
    ])
    y = [None if code in (None, "dk") else float(code) for _, code in units]
    domains = [("all", [True] * len(units)), ("1", [c.kommunekode == "1" for c, _ in units]), ("2:b", [c.stratum == "2:b" for c, _ in units])]
    mask = np.stack([
        np.ones(len(cells), dtype=bool), np.array([c.kommunekode == "1" for c in cells]), np.array([c.stratum == "2:b" for c in cells]),
    ], axis=1)
    ours = estimate(cal, counts, mask, "mean")
    for j, (_, domain) in enumerate(domains):
        theirs = raked.mean(y, domain)
        assert math.isclose(ours.value[j], theirs.value, rel_tol=1e-10)
        assert math.isclose(ours.se[j], theirs.se, rel_tol=1e-8)
    plain = estimate(cal, counts, mask, "mean", calibrated=False)
    assert math.isclose(plain.value[0], design.mean(y).value, rel_tol=1e-12)
    assert math.isclose(plain.se[0], design.mean(y).se, rel_tol=1e-10)


def test_a_municipality_that_cannot_be_raked_is_reported_and_keeps_its_design_weights():
    cells, sizes, population = round_of(11, kommuner=("1", "2", "3", "4"))
    # 2: an age band with population and no respondent; 3: no population counted; 4: respondents
    # in a duration band the frame does not have.
    cells = [c for c in cells if not (c.kommunekode == "2" and c.maalgruppe == "a" and c.age_band == "o")]
    population = [p for p in population if p[0] != "3"]
    cells = [c if c.kommunekode != "4" or c.duration_band != "s" else RespondentCell(c.stratum, c.kommunekode, c.maalgruppe, c.gender,
                                                                                      c.age_band, "x", c.respondents) for c in cells]
    cal = calibrate(cells, sizes, population)
    problems = {p.kommunekode: p for p in cal.problems}
    assert cal.calibrated == ["1"]
    assert problems["2"].reason == "empty_category" and "maalgruppe=a x age_band=o" in problems["2"].detail
    assert problems["3"].reason == "no_population"
    assert problems["4"].reason == "unknown_category" and "duration_band=x" in problems["4"].detail
    assert all(g == 1.0 for c, g in zip(cal.cells, cal.g) if c.kommunekode != "1")
    report = cal.report()
    assert report["margins"] == [["maalgruppe", "gender"], ["maalgruppe", "age_band"], ["duration_band"]]
    assert [p["kommunekode"] for p in report["problems"]] == ["2", "3", "4"]


def test_infeasible_bounds_are_reported_as_not_converged():
    cells, sizes, population = round_of(5)
    cal = calibrate(cells, sizes, population, CalibrationSpec(lower=0.99, upper=1.01))
    assert {p.reason for p in cal.problems} == {"not_converged"} and cal.calibrated == []
    assert np.all(cal.g == 1.0)


@pytest.mark.parametrize(
    "spec",
    [
        {"margins": [["maalgruppe", "koen"]]},
        {"margins": []},
        {"margins": [["gender", "gender"]]},
        {"bounds": [1.2, 3.0]},
        {"bounds": [0.5, 0.9]},
    ],
)
def test_a_bad_specification_is_refused(spec):
    with pytest.raises(CalibrationSpecError):
        CalibrationSpec.from_json(spec)


def test_specification_round_trips_through_json():
    spec = CalibrationSpec((("gender",), ("maalgruppe", "age_band")), -math.inf, math.inf)
    assert CalibrationSpec.from_json(spec.to_json()) == spec
    assert CalibrationSpec.from_json(None) == CalibrationSpec()
