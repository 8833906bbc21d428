"""The dashboard's representativeness rules without a service: which rates a reader sees (only
cells the release published, at the threshold, and a line never with a single hidden level), the
R-indicator and partial R-indicators equal to the domain's on the reader's own data, hidden
where a rate is, the municipality as a variable only for KL, and the plain-language reading."""

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
VARIABLES = ("maalgruppe", "gender", "age_band", "duration_band")


def everything_published(sampled: list[tuple], answered: list[tuple], kommune: str) -> dict[tuple[str, str], int]:
    """What a release that published every cell of ``kommune`` (or the country) says: each
    (variable, level)'s answered count."""
    out: dict[tuple[str, str], int] = {}
    for k, *bands, _weight, _n in sampled:
        if kommune in ("national", k):
            for j, variable in enumerate(VARIABLES):
                out.setdefault((variable, bands[j]), 0)
    for k, *bands, n in answered:
        if kommune in ("national", k):
            for j, variable in enumerate(VARIABLES):
                out[(variable, bands[j])] += n
    return out


def shown(sampled, answered, kommune, **kwargs):
    """The figures where the release published every cell."""
    return figures(sampled, answered, kommune, MIN, published=everything_published(sampled, answered, kommune), **kwargs)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["a", "b", "c", "d", "e"]),
                       st.integers(0, 40).flatmap(lambda s: st.tuples(st.just(s), st.integers(0, s))), min_size=1),
       st.integers(1, 8), st.data())
def test_a_line_shows_only_published_rates_above_the_threshold_and_never_one_hidden_level(counts, min_count, data):
    # The release hid some levels (None), left some out, or published them at another count.
    published = {level: data.draw(st.sampled_from([answered, answered, None, answered + 1, "absent"]))
                 for level, (_, answered) in counts.items()}
    published = {level: count for level, count in published.items() if count != "absent"}
    line = dict(line_rates(counts, min_count, published))
    assert list(line) == sorted(counts)
    refused = {level for level, (s, a) in counts.items() if min(a, s - a) < min_count or published.get(level) != a}
    for level, rate in line.items():
        sampled, answered = counts[level]
        if rate is not None:
            assert answered >= min_count and sampled - answered >= min_count and rate == answered / sampled
            assert published.get(level) == answered  # never a count the release did not publish
        elif level not in refused:
            # hidden though allowed: only as the second of a line that hid one
            assert len(refused) == 1
    hidden = [level for level, rate in line.items() if rate is None]
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
    aarhus = shown(sampled, answered, "751", names_municipalities=False)
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
    municipal_reader = shown(sampled, answered, "national", names_municipalities=False)
    kl = shown(sampled, answered, "national", names_municipalities=True)
    assert municipal_reader.r_indicator == kl.r_indicator and municipal_reader.gap.variable == "kommunekode"
    assert municipal_reader.partial["kommunekode"] is None and kl.partial["kommunekode"] > 0
    assert (municipal_reader.gap.low, municipal_reader.gap.high) == (None, None) and kl.gap.low == "147"
    assert "kommunerne" in reading(municipal_reader, "da") and "147" not in reading(municipal_reader, "da")
    assert "Frederiksberg svarer mindre end" in reading(kl, "da")
    assert "kommunekode" not in municipal_reader.rates  # no line of the municipalities' rates


def test_a_small_municipality_shows_no_r_indicator_and_no_hidden_rate():
    sampled, answered, units = simulated(6, {"101": 400, "147": 12})
    small = shown(sampled, answered, "147", names_municipalities=False)
    assert small.r_indicator is None and small.cv is None and small.quality is None and small.partial == {}
    assert all(rate is None for line in small.rates.values() for _, rate in line)
    assert reading(small, "da").startswith("Det kan ikke måles endnu")
    tables = representativeness_tables([small], "da")
    assert tables["indicators"][0] == ["R-indikator", "–"]
    assert all(row[1] == "— (undertrykt)" for row in tables["rates"])
    assert shown(sampled, answered, "751", names_municipalities=False) is None


def test_a_variable_with_a_hidden_rate_stays_out_of_the_model_and_is_not_spelt_out():
    # Few women: their rate is hidden, and gender is left out of the propensity model (the fit's
    # margins would give the hidden rate back).
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
    f = shown(sampled, answered, "751", names_municipalities=False)
    assert dict(f.rates["gender"]) == {"K": None, "M": None}  # K below the threshold, M with it
    # Gender is left out of the model: R is that of the other variables alone.
    assert f.partial["gender"] is None and f.partial["age_band"] is not None
    cells = [SampleCell((k[1], k[3], k[4]), 2.0, n, answered_counts.get(k, 0)) for k, n in sampled_counts.items()]
    assert math.isclose(f.r_indicator, representativeness(cells, ("maalgruppe", "age_band", "duration_band")).r_indicator, rel_tol=1e-12)
    assert f.gap.variable != "gender"
    assert "Kvinder" not in reading(f, "da") and "kvinder" not in reading(f, "da")


def test_the_dashboard_shows_no_rate_the_release_hid_or_did_not_have():
    sampled, answered, _ = simulated(3, {"101": 400, "751": 300})
    everything = everything_published(sampled, answered, "751")
    assert shown(sampled, answered, "751", names_municipalities=False).r_indicator is not None
    # The release's audited suppression hid two age bands (one as a secondary cell, above the
    # threshold): the dashboard hides both, and everything that would give them back.
    hid = {**everything, ("age_band", "18-29"): None, ("age_band", "30-39"): None}
    f = figures(sampled, answered, "751", MIN, names_municipalities=False, published=hid)
    assert dict(f.rates["age_band"])["18-29"] is None and dict(f.rates["age_band"])["30-39"] is None
    assert f.partial["age_band"] is None and f.gap.variable != "age_band"
    # A release of response rates only publishes the target groups: no gender, age or duration.
    rates_only = {key: n for key, n in everything.items() if key[0] == "maalgruppe"}
    f = figures(sampled, answered, "751", MIN, names_municipalities=False, published=rates_only)
    assert all(rate is None for v in ("gender", "age_band", "duration_band") for _, rate in f.rates[v])
    assert all(rate is not None for _, rate in f.rates["maalgruppe"])
    assert f.partial == {"maalgruppe": f.partial["maalgruppe"], "gender": None, "age_band": None, "duration_band": None}
    # A count the release published at another value (a later answer) is not shown either.
    stale = {**everything, ("gender", "K"): everything[("gender", "K")] - 1}
    assert dict(figures(sampled, answered, "751", MIN, names_municipalities=False, published=stale).rates["gender"])["K"] is None
