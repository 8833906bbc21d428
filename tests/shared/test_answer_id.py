"""The answer id (shared.answer_id): unique per invitation number, and its check digit catches
every single mistyped digit and every swap of two neighbouring digits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.answer_id import SPACE, InvalidAnswerId, answer_id_for, normalise

numbers = st.integers(min_value=1, max_value=SPACE - 1)


def digits(answer_id: str) -> str:
    return answer_id.replace("-", "")


@given(numbers)
def test_an_answer_id_is_ten_digits_that_normalise_to_themselves(number):
    answer_id = answer_id_for(number)
    assert len(digits(answer_id)) == 10 and digits(answer_id).isdigit()
    assert normalise(answer_id) == answer_id
    assert normalise(f" {digits(answer_id)[:3]} {digits(answer_id)[3:]} ") == answer_id  # spaces anywhere


@given(numbers, numbers)
def test_two_invitation_numbers_never_share_an_answer_id(a, b):
    assert (answer_id_for(a) == answer_id_for(b)) == (a == b)


@given(numbers, st.integers(min_value=0, max_value=9), st.integers(min_value=1, max_value=9))
def test_every_single_mistyped_digit_is_refused(number, position, shift):
    typed = list(digits(answer_id_for(number)))
    typed[position] = str((int(typed[position]) + shift) % 10)
    with pytest.raises(InvalidAnswerId, match="check digit"):
        normalise("".join(typed))


@given(numbers, st.integers(min_value=0, max_value=8))
def test_every_swap_of_two_neighbouring_digits_is_refused(number, position):
    typed = list(digits(answer_id_for(number)))
    if typed[position] == typed[position + 1]:
        return  # swapping equal digits changes nothing
    typed[position], typed[position + 1] = typed[position + 1], typed[position]
    with pytest.raises(InvalidAnswerId, match="check digit"):
        normalise("".join(typed))


@pytest.mark.parametrize("typed, reason", [("1234567890a", "digits only"), ("123456789", "10 digits"),
                                           ("12345-678901", "10 digits"), ("١٢٣٤٥٦٧٨٩٠", "digits only")])
def test_a_malformed_answer_id_says_what_is_wrong(typed, reason):
    with pytest.raises(InvalidAnswerId, match=reason):
        normalise(typed)


def test_consecutive_invitations_do_not_get_look_alike_ids():
    first, second = digits(answer_id_for(1000)), digits(answer_id_for(1001))
    assert sum(a != b for a, b in zip(first, second, strict=True)) >= 3


def test_numbers_outside_the_range_are_refused_not_wrapped():
    with pytest.raises(ValueError):
        answer_id_for(SPACE)
