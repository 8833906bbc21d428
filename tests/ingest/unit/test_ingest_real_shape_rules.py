"""The rules issue #21 adds, as properties: classification from benefit and visitation category
(mapping v2), tolerant header matching, registered profiles, future dates, the replacement rule."""

from __future__ import annotations

import itertools
import string
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.domain.classification import ExclusionReason, classify, load_mapping
from services.ingest.domain.errors import MappingDataError
from services.ingest.domain.profiles import Kolonne, from_spec, get_profile, load_profiles, registered_profile
from services.ingest.domain.readers import find_header_row, missing_column_advice
from services.ingest.domain.replacement import MIN_SHARE, replacement_refusal
from services.ingest.domain.validation import ValidRow, parse_date, validate_row

V1, V2 = load_mapping("v1"), load_mapping("v2")
REFERENCE = date(2023, 8, 1)
CATEGORY_DEPENDENT = [rule for rule in V2.rules if rule.by_kategori]


def _spellings(name: str) -> st.SearchStrategy[str]:
    """The ways a case system or Excel writes a name: case, spacing, æøå as ae/oe/aa."""
    folded = name.replace("æ", "ae").replace("ø", "oe").replace("å", "aa").replace("Æ", "Ae").replace("Ø", "Oe").replace("Å", "Aa")
    return st.sampled_from([name, name.upper(), name.lower(), f"  {name} ", folded, folded.lower(), name.replace(" ", "  ")])


@st.composite
def benefit_and_category(draw):
    rule = draw(st.sampled_from(CATEGORY_DEPENDENT))
    key = draw(st.sampled_from(sorted(rule.by_kategori)))
    spec = V2.raw["visitationskategorier"][key]
    category = draw(st.sampled_from([spec["display_name"], *spec.get("aliases", ())]).flatmap(_spellings))
    return rule, key, draw(_spellings(rule.ydelse)), category


@given(benefit_and_category())
def test_a_category_dependent_benefit_gets_the_group_of_its_category(case):
    rule, key, ydelse, category = case
    decision = V2.decide(ydelse, category)
    assert decision.error is None
    assert (decision.maalgruppe, decision.kategori) == (rule.by_kategori[key], key)


@given(st.sampled_from(CATEGORY_DEPENDENT), st.sampled_from([None, "", "  ", "Match 3", "Ukendt", "Jobparat 2"]))
def test_a_missing_or_unknown_category_is_a_row_error_naming_both_columns_never_a_group(rule, category):
    decision = V2.decide(rule.ydelse, category)
    assert decision.maalgruppe is None and decision.error is not None
    column, message = decision.error
    assert column == "visitationskategori" and "(column ydelse)" in message and "(column visitationskategori)" in message
    if category and category.strip():
        assert category.strip() not in message  # the cell's text is not echoed


@given(st.sampled_from(CATEGORY_DEPENDENT), st.sampled_from(sorted(V2.kategorier)))
def test_a_category_that_does_not_apply_is_an_error(rule, key):
    decision = V2.decide(rule.ydelse, V2.kategorier[key])
    if key in rule.by_kategori:
        assert decision.maalgruppe == rule.by_kategori[key]
    else:
        assert decision.maalgruppe is None and decision.error[0] == "visitationskategori"


V1_NAMES = [
    (name, rule.maalgruppe)
    for entry, rule in zip(V1.raw["ydelser"], V1.rules, strict=True)
    for name in (entry["ydelse"], *entry.get("aliases", ()))
    if name != "Ressourceforløbsydelse"  # the silent default v2 ends: it needs the category now
]


@pytest.mark.parametrize(("name", "maalgruppe"), V1_NAMES)
def test_every_v1_name_keeps_its_group_without_a_category(name, maalgruppe):
    decision = V2.decide(name, None)
    assert (decision.maalgruppe, decision.error) == (maalgruppe, None)


def test_ressourceforloebsydelse_with_jobafklaring_is_no_longer_aktivitetsparate():
    assert V1.decide("Ressourceforløbsydelse", "Jobafklaringsforløb").maalgruppe == "aktivitetsparate"  # what v1 did
    assert V2.decide("Ressourceforløbsydelse", "Jobafklaringsforløb").maalgruppe == "jobafklaring"
    assert V2.decide("Ressourceforløbsydelse", None).error is not None


def test_a_combined_name_contradicted_by_the_category_column_is_an_error():
    decision = V2.decide("Kontanthjælp - jobparat", "Aktivitetsparat")
    assert decision.maalgruppe is None and decision.error[0] == "visitationskategori"
    assert V2.decide("Kontanthjælp - jobparat", "Jobparat").maalgruppe == "job_og_uddannelsesparate"
    assert V2.decide("Dagpenge", "Aktivitetsparat").maalgruppe == "dagpenge"  # not category-dependent


def test_an_unknown_benefit_names_the_closest_accepted_names():
    _, message = V2.decide("Kontanthjaelpsydelse", "Jobparat").error
    assert "closest accepted names: Kontanthjælp" in message and "Kontanthjaelpsydelse" not in message


def _row(ydelse: str, kategori: str | None, overgangsdato: date) -> ValidRow:
    result = validate_row(
        1, {"cpr": "0101901235", "ydelse": ydelse, "visitationskategori": kategori, "overgangsdato": overgangsdato},
        reference_date=REFERENCE,
    )
    assert isinstance(result, ValidRow), result
    return result


def test_classify_reports_the_decision_and_the_error():
    included = classify(_row("Ressourceforløbsydelse", "Jobafklaringsforløb", date(2022, 1, 1)), REFERENCE, V2)
    assert included.maalgruppe == "jobafklaring" and included.label == ("Ressourceforløbsydelse", "jobafklaringsforloeb")
    refused = classify(_row("Kontanthjælp", None, date(2022, 1, 1)), REFERENCE, V2)
    assert refused.exclusion_reason is ExclusionReason.UNKNOWN_BENEFIT and refused.error[0] == "visitationskategori"


# --- headers -------------------------------------------------------------------------------------

MULTI_WORD = sorted(
    {
        (name, alias)
        for name, profile in load_profiles().items()
        for column in (*profile.required, *profile.optional)
        for alias in profile.aliases[column]
        if 2 <= len(alias.split()) <= 4 and "(" not in alias
    }
)


@pytest.mark.parametrize(("profile", "alias"), MULTI_WORD)
def test_any_word_order_of_a_known_header_means_the_same_column(profile, alias):
    column = get_profile(profile).column_for(alias)
    for words in itertools.permutations(alias.split()):
        assert get_profile(profile).column_for(" ".join(words)) is column


@pytest.mark.parametrize(
    ("header", "column"),
    [
        ("Startdato ydelse", Kolonne.OVERGANGSDATO),
        ("Ydelse startdato", Kolonne.OVERGANGSDATO),
        ("Overgangsdato", Kolonne.OVERGANGSDATO),
        ("Dato for skift", Kolonne.OVERGANGSDATO),
        ("Visitationskategori", Kolonne.VISITATIONSKATEGORI),
        ("Match", Kolonne.VISITATIONSKATEGORI),
        ("CPR nummer", Kolonne.CPR),
        ("Tlf.", Kolonne.TELEFON),
    ],
)
@pytest.mark.parametrize("profile", ["standard", "momentum", "fasit"])
def test_the_header_variants_of_the_issue(profile, header, column):
    assert get_profile(profile).column_for(header) is column


@given(st.text(alphabet=string.ascii_letters + "æøåÆØÅ -.", min_size=1, max_size=30))
@settings(max_examples=300)
def test_a_registered_profile_matches_its_new_header_and_survives_its_spec(header):
    base = get_profile("momentum")
    if base.column_for(header) is not None or not header.strip(" -."):
        return  # already known, or no letters to match: registering it is ambiguous or blank
    try:
        profile = registered_profile("acme", 3, {"overgangsdato": [header]}, base="momentum")
    except MappingDataError:
        return  # its skeleton or words collide with another column's header: refused, never guessed
    assert profile.column_for(header) is Kolonne.OVERGANGSDATO
    assert profile.reference == "acme@3"
    again = from_spec(profile.to_spec())
    assert again.column_for(header) is Kolonne.OVERGANGSDATO and again.reference == "acme@3"


def test_a_registration_that_would_be_ambiguous_is_refused():
    with pytest.raises(MappingDataError, match="ambiguous"):
        registered_profile("acme", 1, {"ydelse": ["Startdato ydelse"]})
    with pytest.raises(MappingDataError, match="built-in"):
        registered_profile("fasit", 1, {})
    with pytest.raises(MappingDataError, match="unknown column"):
        registered_profile("acme", 1, {"adresse": ["Adresse"]})


def test_a_missing_column_gets_the_closest_header_and_a_fix_ready_to_paste():
    profile = get_profile("momentum")
    headers = ["CPR-nummer", "Ydelse", "Ydelsesskift dato", "Seneste samtale", "Forløb afsluttet", "Telefon", "Passiv"]
    _, match = find_header_row([headers], profile.with_overrides({"overgangsdato": "Ydelsesskift dato"}))
    assert match.is_complete
    advice = missing_column_advice(profile, Kolonne.OVERGANGSDATO, headers)
    assert advice["closest_headers"][0] == "Ydelsesskift dato"
    assert advice["fix"]["column_map"] == '{"overgangsdato": "Ydelsesskift dato"}'
    assert advice["fix"]["register_profile"]["body"]["columns"] == {"overgangsdato": ["Ydelsesskift dato"]}


# --- dates ---------------------------------------------------------------------------------------


@given(st.dates(min_value=date(1990, 1, 1), max_value=date(2090, 12, 31)), st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 1, 1)))
def test_a_date_after_the_day_of_the_upload_is_an_error(value, today):
    row = {"cpr": "0101901235", "ydelse": "Dagpenge", "overgangsdato": "2019-01-01", "seneste_samtale": value.isoformat()}
    result = validate_row(1, row, reference_date=REFERENCE, today=today)
    if value > today:
        assert isinstance(result, list) and [e.column for e in result] == ["seneste_samtale"]
        assert "after the day of the upload" in result[0].message and value.isoformat() not in result[0].message
    else:
        assert isinstance(result, ValidRow) and result.seneste_samtale == value


@given(st.dates(min_value=date(1927, 5, 18), max_value=date(2173, 10, 14)))
def test_an_excel_serial_as_text_is_the_same_date(value):
    serial = (value - date(1899, 12, 30)).days
    assert parse_date(str(serial)) == parse_date(serial) == value


# --- replacement ---------------------------------------------------------------------------------


@given(st.one_of(st.none(), st.integers(0, 2_000_000)), st.integers(0, 2_000_000))
def test_a_delivery_may_not_shrink_the_frame_without_confirmation(previous, new):
    refusal = replacement_refusal(previous, new)
    should_refuse = new == 0 or (bool(previous) and new < MIN_SHARE * previous)
    assert (refusal is not None) == should_refuse
    if refusal is not None:
        assert f"remove {max(0, (previous or 0) - new):,} citizens" in refusal and "confirm_replacement=true" in refusal


def test_the_replacement_threshold_is_half():
    assert replacement_refusal(100, 50) is None
    assert replacement_refusal(100, 49) is not None
    assert replacement_refusal(None, 1) is None
