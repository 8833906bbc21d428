"""Representativeness on simulated rounds where response depends on age and gender within strata:
the R-indicator falls as the response mechanism is made more selective, the partial R-indicators
point at the variables that drive it, and over many seeded rounds the calibrated national
estimate is closer to the known population value than the design-weighted one (a sign test on
fixed seeds: deterministic, not flaky)."""

from __future__ import annotations

import math
import random
from collections import Counter, defaultdict

import numpy as np

from services.analytics.domain.answers import CODES
from services.analytics.domain.calibration import CalibrationSpec, RespondentCell, calibrate, estimate
from services.analytics.domain.representativeness import SampleCell, reading_da, representativeness

KOMMUNER = ("101", "147", "751")
GROUPS = ("dagpenge", "aktivitetsparate")
AGES = ("18-29", "30-49", "50+")
DURATIONS = ("<6", "6+")
VARIABLES = ("kommunekode", "maalgruppe", "gender", "age_band", "duration_band")


def simulate(seed: int, selectivity: float, big_n: int = 1500, n: int = 400):
    """A finite population per stratum, a simple random sample of n per stratum, answers that
    depend on age and gender, and response that depends on them by ``selectivity`` (0: none)."""
    rng = random.Random(seed)
    population, sample = Counter(), []
    total_y = total_units = 0
    for k in KOMMUNER:
        for g in GROUPS:
            units = []
            for _ in range(big_n):
                gender, age, duration = rng.choice("KM"), rng.choice(AGES), rng.choice(DURATIONS)
                mean = 2.4 + 0.7 * AGES.index(age) + 0.5 * (gender == "K") + (0.2 if g == "dagpenge" else 0.0)
                y = min(5, max(1, round(rng.gauss(mean, 0.9))))
                units.append((gender, age, duration, y))
                population[(k, g, gender, age, duration)] += 1
                total_y += y
                total_units += 1
            for gender, age, duration, y in rng.sample(units, n):
                logit = -0.9 + selectivity * (0.9 * (AGES.index(age) - 1) + 0.6 * (gender == "K") - 0.3)
                answered = rng.random() < 1 / (1 + math.exp(-logit))
                sample.append((k, g, gender, age, duration, y, answered))
    return population, sample, total_y / total_units, big_n, n


def sample_cells(sample, big_n: int, n: int) -> list[SampleCell]:
    counts = defaultdict(lambda: [0, 0])
    for k, g, gender, age, duration, _, answered in sample:
        counts[(k, g, gender, age, duration)][0] += 1
        counts[(k, g, gender, age, duration)][1] += answered
    return [SampleCell(key, big_n / n, s, a) for key, (s, a) in sorted(counts.items())]


def national_estimates(population, sample, big_n: int) -> tuple[float, float]:
    """(design-weighted, calibrated) national mean of y over the respondents."""
    respondents = Counter()
    answers = defaultdict(Counter)
    for k, g, gender, age, duration, y, answered in sample:
        if answered:
            respondents[(k, g, gender, age, duration)] += 1
            answers[(k, g, gender, age, duration)][str(y)] += 1
    keys = sorted(respondents)
    cells = [RespondentCell(f"{k}:{g}", k, g, gender, age, duration, respondents[(k, g, gender, age, duration)])
             for k, g, gender, age, duration in keys]
    counts = np.array([[answers[key][code] for code in CODES] for key in keys], dtype=float)
    sizes = {f"{k}:{g}": big_n for k in KOMMUNER for g in GROUPS}
    cal = calibrate(cells, sizes, [(*key, c) for key, c in population.items()], CalibrationSpec(lower=-math.inf, upper=math.inf))
    assert cal.problems == []
    everything = np.ones((len(cells), 1), dtype=bool)
    design = estimate(cal, counts, everything, "mean", calibrated=False).value[0]
    calibrated = estimate(cal, counts, everything, "mean").value[0]
    return design, calibrated


def test_the_r_indicator_falls_as_response_gets_more_selective():
    results = []
    for selectivity in (0.0, 0.75, 1.5, 2.5):
        _, sample, _, big_n, n = simulate(seed=101, selectivity=selectivity)
        results.append(representativeness(sample_cells(sample, big_n, n), VARIABLES))
    r = [x.r_indicator for x in results]
    assert r == sorted(r, reverse=True) and len(set(r)) == len(r), r
    assert r[0] > 0.9 and r[-1] < 0.7
    cv = [x.cv for x in results]
    assert cv == sorted(cv), cv
    # Age and gender drive the response; target group, duration and municipality do not.
    selective = results[-1]
    drivers = sorted(selective.partial_unconditional, key=selective.partial_unconditional.get, reverse=True)
    assert set(drivers[:2]) == {"age_band", "gender"}, selective.partial_unconditional
    assert selective.category_unconditional["age_band"]["18-29"] < 0 < selective.category_unconditional["age_band"]["50+"]
    assert selective.category_unconditional["gender"]["M"] < 0
    assert all(selective.partial_conditional[v] <= selective.partial_unconditional[v] + 0.02 for v in ("duration_band", "maalgruppe"))
    text = reading_da(selective)
    assert "skævt fordelt" in text and "aldersgruppe" in text and "18-29" in text
    assert "ligner stikprøven godt" in reading_da(results[0])


def test_the_r_indicator_equals_its_definition_on_the_fitted_propensities():
    _, sample, _, big_n, n = simulate(seed=7, selectivity=1.0)
    cells = sample_cells(sample, big_n, n)
    r = representativeness(cells, VARIABLES)
    d = np.array([c.weight * c.sampled for c in cells])
    rho = r.propensities
    mean = (d * rho).sum() / d.sum()
    sd = math.sqrt((d * (rho - mean) ** 2).sum() / (d.sum() - 1))
    assert math.isclose(r.r_indicator, 1 - 2 * sd, rel_tol=1e-12) and math.isclose(r.cv, sd / mean, rel_tol=1e-12)
    # A logistic fit with an intercept reproduces the weighted response rate (its score equation).
    assert math.isclose(mean, r.response_rate, rel_tol=1e-8)


def test_calibrated_national_estimate_is_closer_to_the_population_value_over_many_rounds():
    runs, closer = 40, 0
    for seed in range(1000, 1000 + runs):
        population, sample, truth, big_n, _ = simulate(seed, selectivity=1.5)
        design, calibrated = national_estimates(population, sample, big_n)
        closer += abs(calibrated - truth) < abs(design - truth)
    # Sign test: under "no better" each run is a coin flip; P(X >= closer) for Bin(40, 1/2).
    p_value = sum(math.comb(runs, k) for k in range(closer, runs + 1)) / 2**runs
    assert p_value < 1e-4, (closer, p_value)


def test_over_many_seeded_rounds_the_r_indicator_falls_with_selectivity_and_the_partial_names_age():
    """The same as a statistical statement: in each of 20 seeded rounds, R falls and the CV rises
    as response is made more selective (no selection, moderate, strong), and under strong
    selection age (the stronger of the two drivers) has the largest partial R-indicator."""
    for seed in range(2000, 2020):
        results = []
        for selectivity in (0.0, 1.0, 2.0):
            _, sample, _, big_n, n = simulate(seed, selectivity=selectivity)
            results.append(representativeness(sample_cells(sample, big_n, n), VARIABLES))
        r, cv = [x.r_indicator for x in results], [x.cv for x in results]
        assert r[0] > r[1] > r[2] and cv[0] < cv[1] < cv[2], (seed, r, cv)
        strong = results[-1].partial_unconditional
        assert max(strong, key=strong.get) == "age_band", (seed, strong)
