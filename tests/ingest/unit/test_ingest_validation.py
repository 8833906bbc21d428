"""Row validation: typed values, errors that never echo personal data, duplicates."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.ingest.domain.cpr import Gender
from services.ingest.domain.readers import EXTRA_FIELDS_KEY, iter_extract_rows
from services.ingest.domain.validation import (
    DuplicateTracker,
    RowError,
    ValidRow,
    hmac_sha256_key,
    parse_bool,
    parse_date,
    validate_row,
    validate_rows,
)

REFERENCE_DATE = date(2023, 8, 1)


def good_row(**changes: object) -> dict[str, object]:
    row: dict[str, object] = {
        "cpr": "010180-1234",
        "ydelse": "  Kontanthjælp -   jobparat ",
        "overgangsdato": "01-02-2023",
        "seneste_samtale": "2023-07-01",
        "forloeb_afsluttet": "Nej",
        "telefon": "20 12 34 56",
        "passiv": "nej",
        "navn": " Søren  Ærø ",
        "forskerbeskyttet": None,
    }
    row.update(changes)
    return row


def errors_of(result: ValidRow | list[RowError]) -> dict[str | None, str]:
    assert isinstance(result, list), result
    return {error.column: error.message for error in result}


def test_a_good_row() -> None:
    result = validate_row(7, good_row(), reference_date=REFERENCE_DATE)
    assert isinstance(result, ValidRow)
    assert result.cpr == "0101801234"
    assert result.gender is Gender.KVINDE
    assert result.birth_date == date(1980, 1, 1)
    assert result.age == 43
    assert result.ydelse == "Kontanthjælp - jobparat"
    assert result.overgangsdato == date(2023, 2, 1)
    assert result.seneste_samtale == date(2023, 7, 1)
    assert result.forloeb_afsluttet is False
    assert result.phone_e164 == "+4520123456"
    assert result.passiv is False
    assert result.navn == "Søren Ærø"
    assert result.forskerbeskyttet is False
    assert result.row_number == 7
    assert result.warnings == ()


def test_repr_hides_personal_data() -> None:
    result = validate_row(1, good_row(), reference_date=REFERENCE_DATE)
    text = repr(result) + str(result)
    for secret in ("1234", "20123456", "Søren"):
        assert secret not in text


def test_optional_values_may_be_blank() -> None:
    result = validate_row(
        1,
        good_row(seneste_samtale="", forloeb_afsluttet=" ", telefon=None, passiv="", navn="", forskerbeskyttet=""),
        reference_date=REFERENCE_DATE,
    )
    assert isinstance(result, ValidRow)
    assert (result.seneste_samtale, result.forloeb_afsluttet, result.phone_e164, result.navn) == (
        None,
        None,
        None,
        None,
    )
    assert result.passiv is False and result.forskerbeskyttet is False


def test_missing_columns_in_a_json_row_are_blank() -> None:
    row = good_row()
    del row["navn"], row["forskerbeskyttet"]
    assert isinstance(validate_row(1, row, reference_date=REFERENCE_DATE), ValidRow)


def test_all_problems_of_a_row_are_reported_at_once() -> None:
    row = good_row(cpr="3201801234", ydelse=" ", overgangsdato="", seneste_samtale="31-02-2023", passiv="måske")
    errors = errors_of(validate_row(3, row, reference_date=REFERENCE_DATE))
    assert set(errors) == {"cpr", "ydelse", "overgangsdato", "seneste_samtale", "passiv"}
    assert "320180-XXXX" in errors["cpr"]
    assert "missing" in errors["overgangsdato"]
    assert "calendar date" in errors["seneste_samtale"]
    assert "måske" not in errors["passiv"]


def test_error_messages_do_not_echo_values() -> None:
    row = good_row(cpr="01018O1234", overgangsdato="Søren Ærø 1234", forloeb_afsluttet="Søren")
    result = validate_row(3, row, reference_date=REFERENCE_DATE)
    for error in result:
        assert "Søren" not in error.message and "1234" not in error.message and "01018O" not in error.message


def test_unusable_phone_is_a_warning_not_an_error() -> None:
    result = validate_row(5, good_row(telefon="12 34"), reference_date=REFERENCE_DATE)
    assert isinstance(result, ValidRow)
    assert result.phone_e164 is None
    assert [(w.row, w.column) for w in result.warnings] == [(5, "telefon")]
    assert "12 34" not in result.warnings[0].message


def test_shifted_row_is_an_error() -> None:
    errors = errors_of(validate_row(9, good_row(**{EXTRA_FIELDS_KEY: 1}), reference_date=REFERENCE_DATE))
    assert "delimiter" in errors[None]


def test_person_born_after_the_reference_date() -> None:
    errors = errors_of(validate_row(1, good_row(cpr="0101254123"), reference_date=REFERENCE_DATE))
    assert "reference date" in errors["cpr"]


@pytest.mark.parametrize(
    "value",
    [
        "2023-08-01",
        "2023-8-1",
        "2023-08-01T00:00:00",
        "2023-08-01 13:45:10",
        "01-08-2023",
        "1-8-2023",
        "01.08.2023",
        "01/08/2023",
        "01-08-2023 00:00",
        "01.08.2023 00.00.00",
        datetime(2023, 8, 1, 12, 30),
        date(2023, 8, 1),
        45139,
        45139.0,
        45139.5,
    ],
)
def test_accepted_dates(value: object) -> None:
    assert parse_date(value) == date(2023, 8, 1)


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("01-08-23", "two-digit"),
        ("2023-02-30", "calendar"),
        ("01082023", "not a date"),
        ("i går", "not a date"),
        ("01-08/2023", "not a date"),
        (True, "yes/no"),
        (0, "Excel"),
        (-5, "Excel"),
        ("1899-12-31", "plausible"),
        ([2023], "type"),
    ],
)
def test_refused_dates(value: object, hint: str) -> None:
    with pytest.raises(ValueError, match=hint):
        parse_date(value)


@settings(deadline=None)
@given(st.dates(min_value=date(1900, 3, 1), max_value=date(2100, 12, 31)))
def test_every_date_format_round_trips(day: date) -> None:
    written = [
        day.isoformat(),
        f"{day:%d-%m-%Y}",
        f"{day:%d.%m.%Y}",
        f"{day:%d/%m/%Y}",
        datetime(day.year, day.month, day.day),
    ]
    assert {parse_date(value) for value in written} == {day}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("ja", True),
        ("JA", True),
        (" Ja ", True),
        ("j", True),
        ("1", True),
        ("true", True),
        ("TRUE", True),
        ("x", True),
        ("X", True),
        ("Sand", True),
        (1, True),
        (1.0, True),
        (True, True),
        ("nej", False),
        ("NEJ", False),
        ("n", False),
        ("0", False),
        ("false", False),
        ("FALSK", False),
        (0, False),
        (False, False),
        (None, None),
        ("", None),
        ("  ", None),
    ],
)
def test_booleans(value: object, expected: bool | None) -> None:
    assert parse_bool(value) is expected


@pytest.mark.parametrize("value", ["måske", "2", 2, "ja!", "-"])
def test_refused_booleans(value: object) -> None:
    with pytest.raises(ValueError, match="yes/no"):
        parse_bool(value)


def test_duplicate_tracker_keeps_no_cpr_numbers() -> None:
    tracker = DuplicateTracker(hmac_sha256_key(b"k" * 32))
    assert tracker.check("0101801234", 2) is None
    assert tracker.check("0202902345", 3) is None
    duplicate = tracker.check("0101801234", 9)
    assert duplicate == RowError(9, "cpr", duplicate.message)
    assert "first in row 2" in duplicate.message and "010180-XXXX" in duplicate.message
    assert "1234" not in duplicate.message.replace("010180-XXXX", "")
    assert len(tracker) == 2
    assert all(b"0101801234" not in key for key in tracker._first_row_by_key)


def test_hmac_key_needs_a_real_secret() -> None:
    with pytest.raises(ValueError):
        hmac_sha256_key(b"short")


def test_validate_rows_end_to_end(tmp_path) -> None:
    lines = [
        "CPR-nummer;Ydelse;Overgangsdato;Seneste samtale;Forløb afsluttet;Telefon;Passiv;Navn",
        "0101801234;Dagpenge;01-02-2022;;nej;20123456;nej;Anna",
        "3201801234;Dagpenge;01-02-2022;;nej;;nej;Bo",
        "010180-1234;Sygedagpenge;01-05-2023;;ja;;nej;Anna igen",
        "0202902345;Sygedagpenge;01-05-2023;;ja;;nej;Carl",
    ]
    path = tmp_path / "e.csv"
    path.write_text("\n".join(lines) + "\n", encoding="cp1252")
    results = list(
        validate_rows(
            iter_extract_rows(path, "momentum"),
            reference_date=REFERENCE_DATE,
            duplicates=DuplicateTracker(hmac_sha256_key(b"s" * 32)),
        )
    )
    assert isinstance(results[0], ValidRow) and results[0].row_number == 2
    assert errors_of(results[1])["cpr"].startswith("320180-XXXX")
    assert "first in row 2" in errors_of(results[2])["cpr"]
    assert isinstance(results[3], ValidRow) and results[3].gender is Gender.MAND
