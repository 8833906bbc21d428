"""Column profiles: shipped data loads, and header matching forgives case, spacing and æøå."""

from __future__ import annotations

import pytest

from services.ingest.domain.errors import MappingDataError
from services.ingest.domain.profiles import Kolonne, get_profile, load_profiles, parse_profiles
from services.ingest.domain.text import label_key, label_skeleton, repair_mojibake


def test_the_three_profiles_ship() -> None:
    assert set(load_profiles()) == {"standard", "momentum", "fasit"}
    assert get_profile(" Momentum ").display_name == "KMD Momentum"
    with pytest.raises(LookupError, match="known profiles"):
        get_profile("opus")


@pytest.mark.parametrize(
    "header",
    [
        "Forløb afsluttet",
        "FORLØB  AFSLUTTET",
        " forløb-afsluttet ",
        "Forloeb afsluttet",
        "Forlob afsluttet",
        "Forl?b afsluttet",
        "Forl\ufffdb afsluttet",
        "ForlÃ¸b afsluttet",  # UTF-8 read as Windows-1252
        "forloeb_afsluttet",
    ],
)
def test_mangled_headers_still_match(header: str) -> None:
    assert get_profile("standard").column_for(header) is Kolonne.FORLOEB_AFSLUTTET


@pytest.mark.parametrize(
    ("profile", "header", "column"),
    [
        ("momentum", "Borgers CPR-nummer", Kolonne.CPR),
        ("momentum", "Ydelse startdato", Kolonne.OVERGANGSDATO),
        ("momentum", "Mobilnummer", Kolonne.TELEFON),
        ("fasit", "CPR nr", Kolonne.CPR),
        ("fasit", "Forsørgelsesydelse", Kolonne.YDELSE),
        ("fasit", "Afsluttet forløb (ja/nej)", Kolonne.FORLOEB_AFSLUTTET),
        ("fasit", "Forskerbeskyttelse", Kolonne.FORSKERBESKYTTET),
        ("standard", "Dato for overgang til aktuel ydelse", Kolonne.OVERGANGSDATO),
    ],
)
def test_vendor_headers(profile: str, header: str, column: Kolonne) -> None:
    assert get_profile(profile).column_for(header) is column


def test_unrelated_headers_do_not_match() -> None:
    profile = get_profile("standard")
    for header in ["Sagsbehandler", "Kommunekode", "", None, "Adresse"]:
        assert profile.column_for(header) is None


def test_match_reports_missing_duplicated_and_unmapped() -> None:
    match = get_profile("standard").match_headers(["CPR-nummer", "Ydelse", "Telefon", "Telefonnr.", "Sagsbehandler"])
    assert Kolonne.PASSIV in match.missing_required
    assert match.duplicated[Kolonne.TELEFON] == ("Telefon", "Telefonnr.")
    assert match.unmapped == ("Sagsbehandler",)
    assert not match.is_complete


def test_ambiguous_profile_data_is_refused() -> None:
    raw = {
        "required_columns": ["cpr", "ydelse"],
        "optional_columns": [],
        "profiles": {"bad": {"columns": {"cpr": ["Ydelse nr"], "ydelse": ["Ydelse-nr."]}}},
    }
    with pytest.raises(MappingDataError, match="ambiguous"):
        parse_profiles(raw)


def test_label_keys() -> None:
    assert label_key("  Forløb -- Afsluttet ") == "forloeb afsluttet"
    assert label_skeleton("Forløb afsluttet") == label_skeleton("Forlob afsluttet") == "frlbfslttt"
    assert repair_mojibake("KontanthjÃ¦lp") == "Kontanthjælp"
    assert repair_mojibake("Ã… plain") == "Å plain"
    assert repair_mojibake("Kontanthjælp") == "Kontanthjælp"
