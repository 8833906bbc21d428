"""Municipality codes as they come in: "101" and "0101" are the same municipality, stored as 3
digits; anything else is refused with what a kommunekode looks like."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.ingest.domain.kommunekode import NotAKommunekode, is_kommunekode, parse
from services.ingest.schemas import RoundFields

codes = st.integers(min_value=100, max_value=999).map(str)


@given(codes)
def test_kommunekode_3_or_4_digits_is_one_code(code):
    assert parse(code) == code
    assert parse("0" + code) == code
    assert parse(f" 0{code} ") == code
    assert parse(parse("0" + code)) == parse(code)  # stored once, read back the same


@given(st.text(max_size=6))
def test_anything_else_is_refused_and_says_what_a_code_is(text):
    stripped = text.strip()
    valid = len(stripped) in (3, 4) and stripped.isascii() and stripped.isdigit() and (len(stripped) == 3 or stripped[0] == "0")
    assert is_kommunekode(text) == valid
    if not valid:
        with pytest.raises(NotAKommunekode, match="0101"):
            parse(text)
    else:
        assert len(parse(text)) == 3


@pytest.mark.parametrize("text", ["1081", "10101", "01", "", "abc", "１０１", "0x65"])
def test_examples_that_are_no_kommunekode(text):
    assert not is_kommunekode(text)


def test_a_round_lists_municipalities_in_either_form_and_keeps_three_digits():
    assert RoundFields(kommuner=["0101", "147", "0751"]).kommuner == ["101", "147", "751"]
    assert RoundFields(kommuner=["1081"]).kommuner == ["1081"]  # left for the round's rules to name
