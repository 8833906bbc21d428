"""Phone numbers to E.164 with Denmark as the default region."""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from services.ingest.domain.errors import PhoneNumberError
from services.ingest.domain.phone import is_probably_sms_capable, normalise_phone

relaxed = settings(deadline=None)
danish_subscriber_numbers = st.text("0123456789", min_size=7, max_size=7).map(lambda rest: "2" + rest)


@pytest.mark.parametrize(
    "written",
    [
        "20123456",
        "20 12 34 56",
        "2012 3456",
        "+45 20 12 34 56",
        "+4520123456",
        "0045 20123456",
        "45 20 12 34 56",
        20123456,
        4520123456,
        20123456.0,
    ],
)
def test_danish_spellings_normalise_to_e164(written: object) -> None:
    assert normalise_phone(written) == "+4520123456"


def test_foreign_numbers_keep_their_country() -> None:
    assert normalise_phone("+46 70 123 45 67") == "+46701234567"


@pytest.mark.parametrize(
    "written", ["", "   ", None, "abc", "1234", "2012345", "201234567890", "+999 1234", "12345678", True]
)
def test_invalid_numbers_raise_without_echoing(written: object) -> None:
    with pytest.raises(PhoneNumberError) as info:
        normalise_phone(written)
    if isinstance(written, str) and written.strip():
        assert written.strip() not in str(info.value)


@relaxed
@given(danish_subscriber_numbers)
def test_normalisation_is_idempotent(number: str) -> None:
    try:
        e164 = normalise_phone(number)
    except PhoneNumberError:
        assume(False)
    assert normalise_phone(e164) == e164
    assert e164 == "+45" + number


@relaxed
@given(danish_subscriber_numbers, st.sampled_from(["{n}", "+45{n}", "0045{n}", "+45 {a} {b}", "{a}-{b}", "({a}) {b}"]))
def test_formatting_does_not_change_the_result(number: str, template: str) -> None:
    try:
        expected = normalise_phone(number)
    except PhoneNumberError:
        assume(False)
    written = template.format(n=number, a=number[:4], b=number[4:])
    assert normalise_phone(written) == expected


def test_toll_free_numbers_are_not_sms_capable() -> None:
    assert is_probably_sms_capable(normalise_phone("20123456"))
    assert not is_probably_sms_capable(normalise_phone("80123456"))
