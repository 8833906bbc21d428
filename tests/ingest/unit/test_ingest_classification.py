"""Classification into the five maalgrupper, minimum durations, exclusions and bands."""

from __future__ import annotations

import copy
import json
from dataclasses import replace
from datetime import date, timedelta
from importlib import resources

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.domain.classification import (
    ExclusionReason,
    add_months,
    classify,
    full_months_between,
    load_mapping,
    parse_mapping,
)
from services.ingest.domain.cpr import Gender
from services.ingest.domain.errors import MappingDataError
from services.ingest.domain.validation import ValidRow

REFERENCE_DATE = date(2023, 8, 1)
MAPPING = load_mapping("v1")
relaxed = settings(deadline=None)


def citizen(ydelse: str, overgangsdato: date, **changes: object) -> ValidRow:
    row = ValidRow(
        cpr="0101801234",
        gender=Gender.KVINDE,
        birth_date=date(1980, 1, 1),
        age=43,
        ydelse=ydelse,
        overgangsdato=overgangsdato,
        seneste_samtale=None,
        forloeb_afsluttet=None,
        phone_e164=None,
        passiv=False,
        navn=None,
        forskerbeskyttet=False,
    )
    return replace(row, **changes)


LONG_AGO = date(2020, 1, 1)


@pytest.mark.parametrize(
    ("ydelse", "maalgruppe"),
    [
        ("Dagpenge", "dagpenge"),
        ("A-dagpenge", "dagpenge"),
        ("Sygedagpenge", "sygedagpenge"),
        ("Kontanthjælp - jobparat", "job_og_uddannelsesparate"),
        ("Kontanthjælp - aktivitetsparat", "aktivitetsparate"),
        ("Uddannelseshjælp - åbenlyst uddannelsesparat", "job_og_uddannelsesparate"),
        ("Uddannelseshjælp - uddannelsesparat", "job_og_uddannelsesparate"),
        ("Uddannelseshjælp - aktivitetsparat", "aktivitetsparate"),
        ("Ledighedsydelse", "job_og_uddannelsesparate"),
        ("Ressourceforløbsydelse", "aktivitetsparate"),
        ("Ressourceforløbsydelse - jobafklaringsforløb", "jobafklaring"),
        # as case systems and Excel mangle them
        ("KONTANTHJÆLP – JOBPARAT", "job_og_uddannelsesparate"),
        ("kontanthjaelp - aktivitetsparat", "aktivitetsparate"),
        ("Uddannelseshj?lp - ?benlyst uddannelsesparat", "job_og_uddannelsesparate"),
        ("RessourceforlÃ¸bsydelse - jobafklaringsforlÃ¸b", "jobafklaring"),
    ],
)
def test_benefits_map_to_the_five_groups(ydelse: str, maalgruppe: str) -> None:
    result = classify(citizen(ydelse, LONG_AGO), REFERENCE_DATE, MAPPING)
    assert result.is_included
    assert result.maalgruppe == maalgruppe == result.benefit_maalgruppe
    assert result.mapping_version == "v1"


def test_the_mapping_has_exactly_the_five_groups_of_the_final_concept() -> None:
    assert set(MAPPING.maalgrupper) == {
        "dagpenge",
        "sygedagpenge",
        "job_og_uddannelsesparate",
        "aktivitetsparate",
        "jobafklaring",
    }
    assert {rule.maalgruppe for rule in MAPPING.rules} == set(MAPPING.maalgrupper)


@pytest.mark.parametrize(
    ("ydelse", "shortest_included"),
    [
        ("Dagpenge", date(2022, 8, 1)),  # 12 months
        ("Sygedagpenge", REFERENCE_DATE - timedelta(weeks=8)),
        ("Kontanthjælp - jobparat", REFERENCE_DATE - timedelta(weeks=8)),
        ("Kontanthjælp - aktivitetsparat", REFERENCE_DATE - timedelta(weeks=8)),
    ],
)
def test_minimum_duration_boundaries(ydelse: str, shortest_included: date) -> None:
    assert classify(citizen(ydelse, shortest_included), REFERENCE_DATE, MAPPING).is_included
    too_short = classify(citizen(ydelse, shortest_included + timedelta(days=1)), REFERENCE_DATE, MAPPING)
    assert too_short.exclusion_reason is ExclusionReason.TOO_SHORT_DURATION
    assert too_short.maalgruppe is None and too_short.benefit_maalgruppe is not None


def test_benefits_without_minimum_duration_count_from_day_one() -> None:
    for ydelse in ("Ledighedsydelse", "Ressourceforløbsydelse - jobafklaringsforløb"):
        assert classify(citizen(ydelse, REFERENCE_DATE), REFERENCE_DATE, MAPPING).is_included


@relaxed
@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2030, 12, 31)), st.integers(min_value=-400, max_value=800))
def test_dagpenge_boundary_is_twelve_calendar_months(overgangsdato: date, days: int) -> None:
    reference = overgangsdato + timedelta(days=days)
    result = classify(citizen("Dagpenge", overgangsdato), reference, MAPPING)
    if overgangsdato > reference:
        assert result.exclusion_reason is ExclusionReason.TRANSITION_AFTER_REFERENCE_DATE
    elif add_months(overgangsdato, 12) <= reference:
        assert result.is_included
    else:
        assert result.exclusion_reason is ExclusionReason.TOO_SHORT_DURATION


@relaxed
@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2030, 12, 31)), st.integers(min_value=0, max_value=200))
def test_eight_week_boundary_is_56_days(overgangsdato: date, days: int) -> None:
    result = classify(citizen("Sygedagpenge", overgangsdato), overgangsdato + timedelta(days=days), MAPPING)
    assert result.is_included == (days >= 56)


@relaxed
@given(st.dates(min_value=date(1990, 1, 1), max_value=date(2040, 12, 31)), st.integers(min_value=0, max_value=5000))
def test_full_months_agree_with_add_months(start: date, days: int) -> None:
    end = start + timedelta(days=days)
    months = full_months_between(start, end)
    assert add_months(start, months) <= end < add_months(start, months + 1)


def test_add_months_clamps_to_the_end_of_the_month() -> None:
    assert add_months(date(2023, 1, 31), 1) == date(2023, 2, 28)
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2023, 11, 15), 14) == date(2025, 1, 15)


def test_exclusion_reasons_in_order() -> None:
    assert (
        classify(citizen("Dagpenge", LONG_AGO, passiv=True), REFERENCE_DATE, MAPPING).exclusion_reason
        is ExclusionReason.PASSIVE
    )
    assert (
        classify(citizen("Supplerende dagpenge", LONG_AGO), REFERENCE_DATE, MAPPING).exclusion_reason
        is ExclusionReason.UNKNOWN_BENEFIT
    )
    assert (
        classify(citizen("Førtidspension", LONG_AGO), REFERENCE_DATE, MAPPING).exclusion_reason
        is ExclusionReason.BENEFIT_OUT_OF_SCOPE
    )
    after = classify(citizen("Dagpenge", REFERENCE_DATE + timedelta(days=1)), REFERENCE_DATE, MAPPING)
    assert after.exclusion_reason is ExclusionReason.TRANSITION_AFTER_REFERENCE_DATE and after.duration_band is None
    young = classify(citizen("Sygedagpenge", LONG_AGO, age=17), REFERENCE_DATE, MAPPING)
    assert young.exclusion_reason is ExclusionReason.UNDER_MINIMUM_AGE and young.age_band is None
    # Passive wins over an unknown benefit: one reason per row, counted once.
    both = classify(citizen("Noget ukendt", LONG_AGO, passiv=True), REFERENCE_DATE, MAPPING)
    assert both.exclusion_reason is ExclusionReason.PASSIVE


def test_research_protection_is_passed_on_unless_the_mapping_excludes_it() -> None:
    protected = citizen("Dagpenge", LONG_AGO, forskerbeskyttet=True)
    assert classify(protected, REFERENCE_DATE, MAPPING).is_included
    strict = replace(MAPPING, exclude_research_protected=True)
    assert classify(protected, REFERENCE_DATE, strict).exclusion_reason is ExclusionReason.RESEARCH_PROTECTED


@pytest.mark.parametrize(
    ("age", "band"),
    [(17, None), (18, "18-29"), (29, "18-29"), (30, "30-39"), (49, "40-49"), (59, "50-59"), (60, "60+"), (99, "60+")],
)
def test_age_bands(age: int, band: str | None) -> None:
    assert MAPPING.age_band(age) == band


@pytest.mark.parametrize(
    ("overgangsdato", "band"),
    [
        (date(2023, 7, 31), "<6 mdr."),
        (date(2023, 2, 2), "<6 mdr."),
        (date(2023, 2, 1), "6-12 mdr."),
        (date(2022, 8, 2), "6-12 mdr."),
        (date(2022, 8, 1), "12-24 mdr."),
        (date(2021, 8, 1), "24+ mdr."),
    ],
)
def test_duration_bands(overgangsdato: date, band: str) -> None:
    assert classify(citizen("Ledighedsydelse", overgangsdato), REFERENCE_DATE, MAPPING).duration_band == band


def _raw_mapping() -> dict:
    text = resources.files("services.ingest.domain").joinpath("maalgrupper_v1.json").read_text("utf-8")
    return json.loads(text)


def test_mapping_data_errors_are_caught_at_load() -> None:
    raw = _raw_mapping()
    broken = copy.deepcopy(raw)
    broken["ydelser"][0]["maalgruppe"] = "ledige"
    with pytest.raises(MappingDataError, match="unknown maalgruppe"):
        parse_mapping(broken)
    ambiguous = copy.deepcopy(raw)
    ambiguous["ydelser"][1]["aliases"].append("DAGPENGE")
    with pytest.raises(MappingDataError, match="ambiguous"):
        parse_mapping(ambiguous)
    gap = copy.deepcopy(raw)
    gap["age_bands"][1]["from"] = 31
    with pytest.raises(MappingDataError, match="contiguous"):
        parse_mapping(gap)
    with pytest.raises(LookupError):
        load_mapping("v99")
    with pytest.raises(LookupError):
        load_mapping("../etc")
