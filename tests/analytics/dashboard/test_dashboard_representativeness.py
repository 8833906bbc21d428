"""The dashboard's representativeness rules without a service: which rates a reader sees (the
threshold, and a line never with a single hidden level), the R-indicator and partial
R-indicators equal to the domain's on the reader's own data, hidden where a rate of the variable
is, the municipality as a variable only for KL, and the plain-language reading."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.analytics.dashboard.present import reading, representativeness_tables
from services.analytics.dashboard.representativeness import figures, line_rates
from services.analytics.domain.representativeness import SampleCell, representativeness

MIN = 5
AGES = ("18-29", "30-39", "50+")


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "c", "d", "e"]),
                       st.integers(0, 40).flatmap(lambda s: st.tuples(st.just(s), st.integers(0, s))), min_size=1),
       st.integers(1, 8))
def test_a_line_shows_only_rates_above_the_threshold_and_never_one_hidden_level(counts, min_count):
    shown = dict(line_rates(counts, min_count))
    assert list(shown) == sorted(counts)
    for level, rate in shown.items():
        sampled, answered = counts[level]
        if rate is not None:
            assert answered >= min_count and sampled - answered >= min_count and rate == answered / sampled
        elif min(answered, sampled - answered) >= min_count:
            # hidden above the threshold: only as the second of a line that hid one
            assert sum(min(a, s - a) < min_count for s, a in counts.values()) == 1
    hidden = [level for level, rate in shown.items() if rate is None]
    assert len(hidden) != 1 or len(counts) == 1


def simulated(seed: int, sizes: dict[str, int], young_rate: float = 0.15) -> tuple[list[tuple], list[tuple], list[tuple]]:
    """(sampled, answered) rows as overview.service.sampled_and_answered gives them, and the units."""
    rng = random.Random(seed)
    units = []
    for k, n in sizes.items():
        for _ in range(n):
            gender, age, duration = rng.choice("KM"), rng.choice(AGES), rng.choice(("<6", "6+"))
            rate = young_rate if age == "18-29" else 0.5
            units.append((k, "dagpenge", gender, age, duration, rng.random() < rate))
    sampled, answered = {}, {}
    for k, g, gender, age, duration, got in units:
        key = (k, g, gender, age, duration)
        sampled[key] = sampled.get(key, 0) + 1
        answered[key] = answered.get(key, 0) + got
    return ([(*key, 3.0, n) for key, n in sampled.items()], [(*key, n) for key, n in answered.items() if n], units)


def test_the_figures_equal_the_domain_on_the_readers_own_data():
    sampled, answered, units = simulated(3, {"101": 400, "751": 300, "147": 200})
    aarhus = figures(sampled, answered, "751", MIN, names_municipalities=False)
    cells: dict[tuple, list[int]] = {}
    for k, g, gender, age, duration, got in units:
        if k == "751":
            c = cells.setdefault((g, gender, age, duration), [0, 0])
            c[0] += 1
            c[1] += got
    want = representativeness([SampleCell(key, 3.0, s, a) for key, (s, a) in sorted(cells.items())],
                              ("maalgruppe", "gender", "age_band", "duration_band"))
    assert math.isclose(aarhus.r_indicator, want.r_indicator, rel_tol=1e-12) and math.isclose(aarhus.cv, want.cv, rel_tol=1e-12)
    assert aarhus.partial == pytest.approx(want.partial_unconditional, rel=1e-12)
    mine = [u for u in units if u[0] == "751"]
    assert aarhus.rate == sum(u[5] for u in mine) / len(mine)
    young = [u for u in mine if u[3] == "18-29"]
    assert dict(aarhus.rates["age_band"])["18-29"] == sum(u[5] for u in young) / len(young)
    # The young answer less: the reading says so, in words a reader uses.
    assert aarhus.gap.variable == "age_band" and (aarhus.gap.low, aarhus.gap.high) == ("18-29", max(AGES[1:], key=lambda a: dict(aarhus.rates["age_band"])[a]))
    text = reading(aarhus, "da")
    assert "R-indikator" in text and "borgere på 18-29 år svarer mindre end borgere på" in text
    assert "citizens aged 18-29 answer less than citizens aged" in reading(aarhus, "en")


def test_the_country_names_municipalities_only_to_kl():
    # 147 answers far less than the others: the municipality is the variable that matters most.
    sampled, answered, _ = simulated(4, {"101": 400, "751": 300}, young_rate=0.5)
    low_sampled, low_answered, _ = simulated(5, {"147": 400}, young_rate=0.05)
    sampled += low_sampled
    answered += [(*row[:-1], max(1, row[-1] // 8)) for row in low_answered]
    municipal_reader = figures(sampled, answered, "national", MIN, names_municipalities=False)
    kl = figures(sampled, answered, "national", MIN, names_municipalities=True)
    assert municipal_reader.r_indicator == kl.r_indicator and municipal_reader.gap.variable == "kommunekode"
    assert municipal_reader.partial["kommunekode"] is None and kl.partial["kommunekode"] > 0
    assert (municipal_reader.gap.low, municipal_reader.gap.high) == (None, None) and kl.gap.low == "147"
    assert "kommunerne" in reading(municipal_reader, "da") and "147" not in reading(municipal_reader, "da")
    assert "Frederiksberg svarer mindre end" in reading(kl, "da")
    assert "kommunekode" not in municipal_reader.rates  # no line of the municipalities' rates


def test_a_small_municipality_shows_no_r_indicator_and_no_hidden_rate():
    sampled, answered, units = simulated(6, {"101": 400, "147": 12})
    small = figures(sampled, answered, "147", MIN, names_municipalities=False)
    assert small.r_indicator is None and small.cv is None and small.quality is None and small.partial == {}
    assert all(rate is None for line in small.rates.values() for _, rate in line)
    assert reading(small, "da").startswith("For få svar")
    tables = representativeness_tables([small], "da")
    assert tables["indicators"][0] == ["R-indikator", "–"]
    assert all(row[1] == "— (undertrykt)" for row in tables["rates"])
    assert figures(sampled, answered, "751", MIN, names_municipalities=False) is None


def test_a_variable_with_a_hidden_rate_has_no_partial_r_indicator_and_is_not_spelt_out():
    # Few women: their rate is hidden, and so the partial R-indicator of gender (it would give it back).
    rng = random.Random(8)
    sampled_counts: dict[tuple, int] = {}
    answered_counts: dict[tuple, int] = {}
    for i in range(300):
        gender = "K" if i < 8 else "M"
        age = rng.choice(AGES)
        key = ("751", "dagpenge", gender, age, "<6")
        sampled_counts[key] = sampled_counts.get(key, 0) + 1
        answered_counts[key] = answered_counts.get(key, 0) + (rng.random() < (0.9 if gender == "K" else 0.3))
    sampled = [(*k, 2.0, n) for k, n in sampled_counts.items()]
    answered = [(*k, n) for k, n in answered_counts.items()]
    f = figures(sampled, answered, "751", MIN, names_municipalities=False)
    assert dict(f.rates["gender"]) == {"K": None, "M": None}  # K below the threshold, M with it
    assert f.partial["gender"] is None and f.partial["age_band"] is not None
    if f.gap.variable == "gender":
        assert f.gap.low is None and "Kvinder" not in reading(f, "da") and "kvinder" not in reading(f, "da")
