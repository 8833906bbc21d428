"""The cached fast path must give exactly what validate_row + classify give, row by row."""

from __future__ import annotations

import os
import random
from datetime import date, datetime

import pytest
from stdnum.dk import cpr as stdnum_cpr

from services.ingest.domain import classify, load_mapping, validate_row
from services.ingest.domain.fastpath import CachedRowValidator, birth_year
from services.ingest.domain.phone import normalise_phone
from services.ingest.domain.errors import PhoneNumberError
from services.ingest.pseudonymisation import decrypt_cpr, encrypt_cpr

REFERENCE = date(2023, 8, 1)
CPRS = ["010190-1235", "0202852346", "320190-1234", "710190-1234", "01019-1234", "0101AB-1234", "", None, 101901235,
        "010124-4000", "290200-4001", "010158-5001", "010199-9999", " 010190-1235 ", "3110231234"]
YDELSER = ["Dagpenge", "  sygedagpenge ", "Kontanthjælp - jobparat", "Ukendt", "Førtidspension", "", None, "x" * 250]
DATES = ["2022-01-01", "01-01-2022", "01.06.2023", "2023-07-31", "2023-09-01", "01-01-22", "2022-13-01", "", None,
         datetime(2022, 5, 1, 12), date(2021, 1, 1), 44000, "1899-01-01"]
BOOLS = ["ja", "nej", "x", "", None, "SAND", "måske", True, 0, 1.0]
PHONES = ["12345678", "+45 12 34 56 78", "0045-23456789", "999", "+46701234567", 23456789, 23456789.0, "", None, "abc",
          "01234567", "+4580123456"]
NAMES = ["Søren", "  Bo  Berg ", "", None, 12, "y" * 250]


def _random_row(rng: random.Random) -> dict:
    row = {
        "cpr": rng.choice(CPRS),
        "ydelse": rng.choice(YDELSER),
        "overgangsdato": rng.choice(DATES),
        "seneste_samtale": rng.choice(DATES),
        "forloeb_afsluttet": rng.choice(BOOLS),
        "telefon": rng.choice(PHONES),
        "passiv": rng.choice(BOOLS),
        "navn": rng.choice(NAMES),
        "forskerbeskyttet": rng.choice(BOOLS),
    }
    if rng.random() < 0.05:
        row["_ekstra_felter"] = 1
    return row


def test_fast_path_equals_the_domain_functions():
    rng = random.Random(2026)
    mapping = load_mapping()
    validator = CachedRowValidator(REFERENCE, mapping)
    for number in range(1, 5001):
        row = _random_row(rng)
        expected = validate_row(number, row, reference_date=REFERENCE)
        got = validator.validate(number, row)
        assert got == expected, row
        if not isinstance(expected, list):
            assert validator.classify(got) == classify(expected, REFERENCE, mapping)


@pytest.mark.parametrize("century_digit", "0123456789")
def test_century_rule_matches_stdnum(century_digit):
    for year in range(100):
        date_part = f"0101{year:02d}{century_digit}"
        assert birth_year(date_part) == stdnum_cpr.get_birth_date(date_part + "000").year


def test_danish_phone_validity_depends_only_on_the_leading_digits():
    rng = random.Random(5)
    for prefix in range(1000):
        outcomes = set()
        for _ in range(3):
            try:
                normalise_phone(f"+45{prefix:03d}{rng.randrange(100000):05d}")
                outcomes.add(True)
            except PhoneNumberError:
                outcomes.add(False)
        assert len(outcomes) == 1, prefix


def test_cpr_encryption_round_trips():
    key = os.urandom(32)
    assert decrypt_cpr(encrypt_cpr("0101901235", key=key, key_id="cpr-1"), key=key, key_id="cpr-1") == "0101901235"
