"""The answer id printed on a paper questionnaire: the contract between dispatch, which gives
every invitation one, and responses, where the paper answers are keyed in against it.

Ten digits, printed ``12345-67890``: nine that name the invitation and a Damm check digit.
Digits only, because an operator types them from a scanned or posted form on a number pad and
no digit looks like another; Damm, because it catches every single mistyped digit and every
swap of two neighbouring digits (a Luhn digit misses 09/90), so a typo is refused rather than
filed against another citizen.

The nine digits are dispatch's invitation number (a database sequence: unique by construction,
no collision to retry) under a fixed bijection of 0..10^9-1, so consecutive invitations do not
get consecutive ids that a slip of one digit would turn into a neighbour's. The bijection is no
secret: the id is a reference, not a credential; the link token stays the credential.
"""

from __future__ import annotations

import re

DIGITS = 9
SPACE = 10**DIGITS
# Multiplier coprime to 10 (3^18) and an offset: n -> (n * M + C) mod 10^9 is a bijection.
_MULTIPLIER = 387_420_489
_OFFSET = 271_828_182
PATTERN = r"^\d{5}-?\d{5}$"
_SEPARATORS = re.compile(r"[\s\-]")

# Damm's totally anti-symmetric quasigroup of order 10.
_DAMM = (
    (0, 3, 1, 7, 5, 9, 8, 6, 4, 2),
    (7, 0, 9, 2, 1, 5, 4, 8, 6, 3),
    (4, 2, 0, 6, 8, 7, 1, 3, 5, 9),
    (1, 7, 5, 0, 9, 8, 3, 4, 2, 6),
    (6, 1, 2, 3, 0, 4, 5, 9, 7, 8),
    (3, 6, 7, 4, 2, 0, 9, 5, 8, 1),
    (5, 8, 6, 9, 7, 2, 0, 1, 3, 4),
    (8, 9, 4, 5, 3, 6, 2, 0, 1, 7),
    (9, 4, 3, 8, 6, 1, 7, 2, 0, 5),
    (2, 5, 8, 1, 4, 3, 6, 7, 9, 0),
)


class InvalidAnswerId(ValueError):
    """What is wrong with a typed answer id, in words an operator can act on."""


def check_digit(digits: str) -> str:
    interim = 0
    for ch in digits:
        interim = _DAMM[interim][int(ch)]
    return str(interim)


def answer_id_for(number: int) -> str:
    """The answer id of invitation number ``number`` (1 <= number < 10^9), as printed."""
    if not 0 <= number < SPACE:
        raise ValueError(f"invitation number {number} is outside the answer ids' range (0 to {SPACE - 1})")
    body = f"{(number * _MULTIPLIER + _OFFSET) % SPACE:0{DIGITS}d}"
    full = body + check_digit(body)
    return f"{full[:5]}-{full[5:]}"


def normalise(typed: str) -> str:
    """A typed answer id in its printed form; spaces and hyphens anywhere are ignored.
    Raises InvalidAnswerId saying what is wrong."""
    digits = _SEPARATORS.sub("", typed)
    if not digits.isascii() or not digits.isdigit():
        raise InvalidAnswerId("an answer id has digits only (spaces and hyphens are ignored)")
    if len(digits) != DIGITS + 1:
        raise InvalidAnswerId(f"an answer id has {DIGITS + 1} digits; this one has {len(digits)}")
    if check_digit(digits) != "0":  # Damm: the whole number, check digit included, reduces to 0
        raise InvalidAnswerId("the check digit does not match: a digit is mistyped, or two are swapped")
    return f"{digits[:5]}-{digits[5:]}"
