"""Allocation: the size curve, disproportional allocation over target groups, the
200-expected-answers rule, exact integer rounding and operator overrides."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from services.sampling.domain import (
    MAALGRUPPER,
    AllocationError,
    AllocationRules,
    SizePoint,
    StratumKey,
    WarningCode,
    adjust,
    allocate,
)
from services.sampling.domain.allocation import _box_proportional, _largest_remainder

PROPERTY = settings(max_examples=150, deadline=None)


def units_needed(answers: float, rate: float) -> int:
    """Smallest n with n·rate ≥ answers, by brute force (independent of the code)."""
    n = 0
    while n * rate < answers:
        n += 1
    return n


def answers_if_all(counts: dict[StratumKey, int], rules: AllocationRules) -> float:
    return math.fsum(n * rules.response_rates[g] for (_, g), n in counts.items())


# --- the size curve ------------------------------------------------------------------


def test_default_curve_scales_from_1000_to_2000_with_log_population() -> None:
    rules = AllocationRules()
    assert rules.target_sample(500) == 1_000
    assert rules.target_sample(1_500) == 1_000
    assert rules.target_sample(25_000) == 2_000
    assert rules.target_sample(200_000) == 2_000
    # Halfway in log(population) between the two points is halfway in sample size.
    assert rules.target_sample(round(math.sqrt(1_500 * 25_000))) == 1_500


def test_step_bands_are_data() -> None:
    rules = AllocationRules(
        size_interpolation="step",
        size_curve=(
            SizePoint(population=1, sample=1_000),
            SizePoint(population=5_000, sample=1_500),
            SizePoint(population=20_000, sample=2_000),
        ),
    )
    assert [rules.target_sample(p) for p in (10, 4_999, 5_000, 19_999, 20_000, 90_000)] == [
        1_000,
        1_000,
        1_500,
        1_500,
        2_000,
        2_000,
    ]


@given(
    population=st.integers(0, 10**6),
    bigger=st.integers(0, 10**6),
    min_sample=st.integers(0, 1_500),
    spread=st.integers(0, 2_000),
    step=st.booleans(),
)
@PROPERTY
def test_target_is_monotone_and_within_min_max(
    population: int, bigger: int, min_sample: int, spread: int, step: bool
) -> None:
    rules = AllocationRules(
        min_sample=min_sample,
        max_sample=max(1, min_sample + spread),
        size_interpolation="step" if step else "log_linear",
    )
    target = rules.target_sample(population)
    assert rules.min_sample <= target <= rules.max_sample
    assert rules.target_sample(population + bigger) >= target


@pytest.mark.parametrize(
    "bad",
    [
        {"min_sample": 2_500, "max_sample": 2_000},
        {"size_curve": ()},
        {"size_curve": ({"population": 10, "sample": 5}, {"population": 10, "sample": 6})},
        {"size_curve": ({"population": 10, "sample": 9}, {"population": 20, "sample": 6})},
        {"response_rates": {"dagpenge": 0.0}},
        {"response_rates": {"dagpenge": 1.2}},
        {"allocation_power": 1.5},
        {"min_expected_answers": -1},
        {"no_such_rule": 1},
    ],
)
def test_rules_reject_nonsense(bad: dict) -> None:
    with pytest.raises(ValidationError):
        AllocationRules(**bad)


def test_default_response_rates_cover_the_five_groups_with_aktivitetsparate_lowest() -> None:
    rates = AllocationRules().response_rates
    assert set(rates) == set(MAALGRUPPER)
    assert min(rates, key=rates.get) == "aktivitetsparate"
    assert all(0.15 <= r <= 0.30 for r in rates.values())


# --- allocation on concrete cases ----------------------------------------------------

MIDSIZE = {
    ("151", "dagpenge"): 2_000,
    ("151", "sygedagpenge"): 1_500,
    ("151", "job_og_uddannelsesparate"): 1_200,
    ("151", "aktivitetsparate"): 800,
    ("151", "jobafklaring"): 300,
}


def test_power_allocation_spreads_expected_answers_as_sqrt_population() -> None:
    rules = AllocationRules()
    result = allocate(MIDSIZE, rules)
    muni = result.municipalities["151"]
    assert muni.target_sample == rules.target_sample(5_800) == muni.sample
    assert muni.expected_answers >= 200
    # No stratum is capped here, so n_h = λ·√N_h / r_h up to rounding (±1 unit).
    lam = muni.sample / sum(math.sqrt(n) / rules.response_rates[g] for (_, g), n in MIDSIZE.items())
    for s in result.strata.values():
        assert abs(s.sample - lam * math.sqrt(s.population) / s.response_rate) < 1
    # ... so expected answers are ∝ √N_h: each within one unit's answers of that.
    per_sqrt = [s.expected_answers / math.sqrt(s.population) for s in result.strata.values()]
    assert max(per_sqrt) - min(per_sqrt) < 0.31 / math.sqrt(300)


def test_low_response_group_is_oversampled() -> None:
    # Same population in both groups: aktivitetsparate (lowest rate) must get the larger
    # sample, and about the same number of expected answers.
    counts = {("420", "dagpenge"): 3_000, ("420", "aktivitetsparate"): 3_000}
    result = allocate(counts)
    dag, akt = result.strata[("420", "dagpenge")], result.strata[("420", "aktivitetsparate")]
    assert akt.sample > dag.sample
    assert akt.inclusion_probability > dag.inclusion_probability
    assert abs(akt.expected_answers - dag.expected_answers) < 0.31


def test_power_one_gives_answers_proportional_to_population() -> None:
    result = allocate(MIDSIZE, AllocationRules(allocation_power=1.0))
    ratios = [s.expected_answers / s.population for s in result.strata.values()]
    assert max(ratios) - min(ratios) < 0.31 / 300


def test_small_municipality_takes_everyone_and_warns_with_exact_shortfall() -> None:
    counts = {
        ("825", "dagpenge"): 200,
        ("825", "aktivitetsparate"): 300,
        ("825", "jobafklaring"): 20,
    }
    rules = AllocationRules()
    result = allocate(counts, rules)
    assert result.sample_sizes() == counts  # the whole population
    muni = result.municipalities["825"]
    possible = 200 * 0.30 + 300 * 0.18 + 20 * 0.23
    assert muni.max_expected_answers == pytest.approx(possible)
    assert muni.shortfall == pytest.approx(200 - possible)
    codes = {w.code: w for w in muni.warnings}
    assert codes[WarningCode.MIN_ANSWERS_UNREACHABLE].shortfall == muni.shortfall
    assert WarningCode.BELOW_MIN_SAMPLE in codes


def test_smaller_municipalities_get_larger_sampling_fractions() -> None:
    mix = {
        "dagpenge": 0.3,
        "sygedagpenge": 0.25,
        "job_og_uddannelsesparate": 0.2,
        "aktivitetsparate": 0.17,
        "jobafklaring": 0.08,
    }
    counts = {
        (kode, g): round(size * share)
        for kode, size in (("101", 40_000), ("461", 8_000), ("540", 2_500))
        for g, share in mix.items()
    }
    munis = allocate(counts).municipalities
    fractions = [munis[k].sample / munis[k].population for k in ("101", "461", "540")]
    assert fractions == sorted(fractions)
    assert munis["101"].sample == 2_000 and munis["540"].sample >= 1_000


def test_raises_total_above_max_when_200_answers_need_it() -> None:
    # A very low response rate: 2,000 letters give only 100 expected answers.
    rules = AllocationRules(response_rates={"aktivitetsparate": 0.05})
    result = allocate({("330", "aktivitetsparate"): 10_000}, rules)
    muni = result.municipalities["330"]
    assert muni.sample == 4_000  # the smallest n with n·0.05 ≥ 200
    assert muni.expected_answers >= 200
    assert [w.code for w in muni.warnings] == [WarningCode.ABOVE_MAX_SAMPLE]


def test_per_stratum_minimum_lifts_small_groups() -> None:
    counts = {("615", "dagpenge"): 40_000, ("615", "jobafklaring"): 400}
    plain = allocate(counts)
    lifted = allocate(counts, AllocationRules(min_expected_answers_per_stratum=80))
    key = ("615", "jobafklaring")
    assert plain.strata[key].expected_answers < 80
    assert lifted.strata[key].expected_answers >= 80
    assert lifted.strata[key].sample == units_needed(80, 0.23)
    assert lifted.municipalities["615"].sample == plain.municipalities["615"].sample


def test_empty_strata_and_unknown_groups() -> None:
    result = allocate({("101", "dagpenge"): 0, ("101", "sygedagpenge"): 5_000})
    assert result.strata[("101", "dagpenge")].sample == 0
    assert result.strata[("101", "dagpenge")].inclusion_probability == 0.0
    with pytest.raises(AllocationError, match="maalgruppe 'ukendt'"):
        allocate({("101", "ukendt"): 10})
    with pytest.raises(AllocationError):
        allocate({("101", "dagpenge"): -1})
    with pytest.raises(AllocationError):
        allocate({"101": 5})  # type: ignore[dict-item]


# --- properties over random municipalities -------------------------------------------

population_sizes = st.one_of(st.integers(0, 40), st.integers(0, 2_000), st.integers(0, 40_000))


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[dict[StratumKey, int], AllocationRules]:
    min_sample = draw(st.integers(0, 1_500))
    rules = AllocationRules(
        min_sample=min_sample,
        max_sample=draw(st.integers(max(1, min_sample), 3_000)),
        size_interpolation=draw(st.sampled_from(["log_linear", "step"])),
        response_rates={g: draw(st.floats(0.03, 0.8)) for g in MAALGRUPPER},
        min_expected_answers=draw(st.sampled_from([0.0, 200.0]) | st.floats(0, 600)),
        min_expected_answers_per_stratum=draw(st.none() | st.floats(1, 80)),
        allocation_power=draw(st.floats(0, 1)),
    )
    counts: dict[StratumKey, int] = {}
    for k in range(draw(st.integers(1, 4))):
        groups = draw(st.lists(st.sampled_from(MAALGRUPPER), min_size=1, max_size=5, unique=True))
        for g in groups:
            counts[(str(101 + k), g)] = draw(population_sizes)
    return counts, rules


@given(scenarios())
@PROPERTY
def test_allocation_rules_hold_for_any_population(
    scenario: tuple[dict[StratumKey, int], AllocationRules],
) -> None:
    counts, rules = scenario
    result = allocate(counts, rules)
    assert set(result.strata) == set(counts)
    needed = rules.min_expected_answers
    floor = rules.min_expected_answers_per_stratum

    for kode, muni in result.municipalities.items():
        mine = {key: n for key, n in counts.items() if key[0] == kode}
        strata = [result.strata[key] for key in mine]
        population = sum(mine.values())
        # Hard: whole citizens, never more than the stratum has, exact totals.
        assert all(isinstance(s.sample, int) and 0 <= s.sample <= s.population for s in strata)
        assert muni.sample == sum(s.sample for s in strata)
        assert muni.population == population
        codes = [w.code for w in muni.warnings]

        best = answers_if_all(mine, rules)
        if best >= needed:
            # The 200 rule is met whenever the population makes it possible.
            assert muni.expected_answers >= needed
            assert muni.shortfall == 0.0
            assert WarningCode.MIN_ANSWERS_UNREACHABLE not in codes
        else:
            # Otherwise everyone is taken, and the warning states the exact shortfall.
            assert all(s.sample == s.population for s in strata)
            [warning] = [w for w in muni.warnings if w.code == WarningCode.MIN_ANSWERS_UNREACHABLE]
            assert warning.shortfall == muni.shortfall == needed - best
        assert WarningCode.MIN_ANSWERS_NOT_MET not in codes  # only overrides can cause it

        if floor:
            for s in strata:
                assert s.sample >= min(s.population, units_needed(floor, s.response_rate))
                unreachable = s.population * s.response_rate < floor and s.population > 0
                flagged = any(
                    w.code == WarningCode.STRATUM_MIN_ANSWERS_UNREACHABLE
                    and w.maalgruppe == s.maalgruppe
                    for w in muni.warnings
                )
                assert flagged == unreachable

        # Min/max where feasible: without the answer rule the total is the target from
        # the curve (inside [min, max]) unless the population is smaller (take all) or
        # per-stratum minimums need more.
        floors = (
            sum(min(n, units_needed(floor, rules.response_rates[g])) for (_, g), n in mine.items())
            if floor
            else 0
        )
        base = allocate(mine, rules.model_copy(update={"min_expected_answers": 0.0}))
        base_total = base.municipalities[kode].sample
        assert base_total == min(population, max(rules.target_sample(population), floors))
        if population >= rules.min_sample and floors <= rules.max_sample:
            assert rules.min_sample <= base_total <= rules.max_sample
        if base.municipalities[kode].expected_answers >= needed:
            assert all(result.strata[k].sample == base.strata[k].sample for k in mine)
        elif best >= needed:
            # Raised for the 200 rule, and only as far as needed: the same allocation
            # one citizen smaller would miss it.
            assert muni.sample > base_total
            smaller = muni.sample - 1
            one_less = allocate(
                mine,
                rules.model_copy(
                    update={
                        "min_expected_answers": 0.0,
                        "min_sample": smaller,
                        "max_sample": smaller,
                    }
                ),
            )
            assert one_less.municipalities[kode].sample == smaller
            assert one_less.municipalities[kode].expected_answers < needed

        # Disproportional: with equal N_h, a lower response rate never gets fewer letters.
        for a in strata:
            for b in strata:
                if a.population == b.population and a.response_rate < b.response_rate:
                    assert a.sample >= b.sample


@given(
    quotas=st.lists(st.floats(0, 500, allow_nan=False), min_size=1, max_size=8),
    data=st.data(),
)
@PROPERTY
def test_largest_remainder_is_exact_and_within_one(
    quotas: list[float], data: st.DataObject
) -> None:
    upper = [math.ceil(q) + data.draw(st.integers(0, 3)) for q in quotas]
    lower = [max(0, math.floor(q) - data.draw(st.integers(0, 3))) for q in quotas]
    total = round(math.fsum(quotas))
    sizes = _largest_remainder(quotas, total, lower, upper)
    assert sum(sizes) == total
    assert all(lo <= n <= up for n, lo, up in zip(sizes, lower, upper))
    # Hamilton: every quota is rounded down or up, never further.
    assert all(abs(n - q) < 1 + 1e-9 for n, q in zip(sizes, quotas))


@given(
    weights=st.lists(st.floats(0.01, 100), min_size=1, max_size=6),
    caps=st.lists(st.integers(0, 1_000), min_size=6, max_size=6),
    floors=st.lists(st.integers(0, 300), min_size=6, max_size=6),
    fraction=st.floats(0, 1),
)
@PROPERTY
def test_box_allocation_sums_and_respects_bounds(
    weights: list[float], caps: list[int], floors: list[int], fraction: float
) -> None:
    upper = caps[: len(weights)]
    lower = [min(f, u) for f, u in zip(floors, upper)]
    total = round(sum(lower) + fraction * (sum(upper) - sum(lower)))
    x = _box_proportional(total, weights, lower, upper)
    assert math.fsum(x) == pytest.approx(total, abs=1e-6)
    assert all(lo <= v <= up for v, lo, up in zip(x, lower, upper))
    sizes = _largest_remainder(x, total, lower, upper)
    assert sum(sizes) == total and all(lo <= n <= up for n, lo, up in zip(sizes, lower, upper))


# --- operator overrides --------------------------------------------------------------


def test_adjust_applies_override_and_revalidates() -> None:
    original = allocate(MIDSIZE)
    key = ("151", "jobafklaring")
    adjusted = adjust(original, {key: 300})
    assert adjusted.strata[key].sample == 300 and adjusted.strata[key].overridden
    assert original.strata[key].sample != 300  # the input is not mutated
    muni = adjusted.municipalities["151"]
    assert muni.sample == sum(s.sample for s in adjusted.strata.values())
    assert muni.expected_answers == pytest.approx(
        sum(s.expected_answers for s in adjusted.strata.values())
    )


def test_adjust_warns_when_override_breaks_the_200_rule() -> None:
    original = allocate(MIDSIZE)
    cut = {key: 100 for key in MIDSIZE}
    adjusted = adjust(original, cut)
    muni = adjusted.municipalities["151"]
    expected = sum(100 * r for r in AllocationRules().response_rates.values())
    assert muni.expected_answers == pytest.approx(expected)
    [warning] = [w for w in muni.warnings if w.code == WarningCode.MIN_ANSWERS_NOT_MET]
    assert warning.shortfall == pytest.approx(200 - expected)
    assert WarningCode.BELOW_MIN_SAMPLE in [w.code for w in muni.warnings]


def test_adjust_rejects_impossible_overrides_listing_all() -> None:
    original = allocate(MIDSIZE)
    with pytest.raises(AllocationError) as err:
        adjust(
            original,
            {
                ("151", "jobafklaring"): 301,  # N_h is 300
                ("151", "dagpenge"): -1,
                ("999", "dagpenge"): 5,
                ("151", "sygedagpenge"): 2.5,  # type: ignore[dict-item]
            },
        )
    message = str(err.value)
    for fragment in ("301 outside 0..300", "-1 outside", "unknown stratum", "whole number"):
        assert fragment in message


def test_adjust_to_whole_population_clears_warnings() -> None:
    counts = {("760", "dagpenge"): 1_200, ("760", "aktivitetsparate"): 400}
    original = allocate(counts, AllocationRules(min_expected_answers_per_stratum=70))
    adjusted = adjust(original, counts)
    assert adjusted.sample_sizes() == counts
    assert adjusted.warnings == ()


# --- the operator's cap (max_sample_is_cap) ------------------------------------------------------


def test_an_operators_cap_of_100_is_a_cap_not_a_280_person_census() -> None:
    counts = {("101", "dagpenge"): 200, ("101", "aktivitetsparate"): 80}
    uncapped = allocate(counts, AllocationRules(min_sample=50, max_sample=100))
    assert uncapped.municipalities["101"].sample == 280  # the 200 rule wins over a plain max
    capped = allocate(counts, AllocationRules(min_sample=50, max_sample=100, max_sample_is_cap=True))
    municipality = capped.municipalities["101"]
    assert municipality.sample == capped.total_sample == 100
    conflict = municipality.cap_conflict
    assert conflict is not None and (conflict.rule, conflict.cap, conflict.sample_needed) == ("min_expected_answers", 100, 280)
    assert conflict.expected_answers == pytest.approx(municipality.expected_answers)
    assert "capped_by_max_sample" in {w.code.value for w in municipality.warnings}


@given(scenarios(), st.integers(min_value=1, max_value=3000))
@settings(max_examples=200, deadline=None)
def test_a_cap_wins_in_every_municipality_and_each_conflict_is_reported(scenario, cap) -> None:
    counts, rules = scenario
    rules = rules.model_copy(update={"max_sample": cap, "min_sample": min(rules.min_sample, cap), "max_sample_is_cap": True})
    free = allocate(counts, rules.model_copy(update={"max_sample_is_cap": False}))
    capped = allocate(counts, rules)
    for kode, municipality in capped.municipalities.items():
        population = municipality.population
        assert municipality.sample <= cap
        asked = free.municipalities[kode].sample
        # A conflict exactly where the rules asked for more than the cap; the cap is then taken in full.
        assert (municipality.cap_conflict is not None) == (asked > cap)
        if municipality.cap_conflict is not None:
            assert municipality.sample == min(cap, population) == cap
            assert municipality.cap_conflict.sample_needed == asked
        else:
            assert municipality.sample == asked
    for key, stratum in capped.strata.items():
        assert 0 <= stratum.sample <= stratum.population
