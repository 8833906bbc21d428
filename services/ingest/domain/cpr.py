"""CPR numbers (personnummer): parsing, derived gender, birth date and age, and masking.

python-stdnum's ``stdnum.dk.cpr`` supplies the compact form, the century rule (the 7th digit
together with the two-digit year decides the century) and the birth date. We do not use its
``validate``: it compares the birth date with *today*, whereas the survey needs the round's
reference date. The modulus-11 checksum is deliberately never checked, because the CPR office
has issued numbers that fail it since 1 October 2007 (they are fully valid).

Nothing in this module ever puts a full CPR number into a message or a repr: see ``mask_cpr``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from numbers import Integral

from stdnum import exceptions as stdnum_errors
from stdnum.dk import cpr as stdnum_cpr

from services.ingest.domain.errors import CprError

_TEN_ASCII_DIGITS = re.compile(r"[0-9]{10}")
_MASK_UNKNOWN = "XXXXXX-XXXX"

# CPR-kontoret's recommended construction for substitute numbers (erstatningspersonnumre): the
# first digit of the birth day is raised by 6, so days 61-91 never collide with real numbers.
_SUBSTITUTE_DAY_OFFSET = 60


class Gender(StrEnum):
    """Gender as the CPR number encodes it: the last digit is odd for men, even for women."""

    MAND = "M"  # male
    KVINDE = "K"  # female


class NonPersonNumberKind(StrEnum):
    """Why a ten-digit value cannot be a real person's CPR number."""

    ERSTATNINGSPERSONNUMMER = "erstatningspersonnummer"  # substitute number (day + 60)
    INVALID_BIRTH_DATE = "invalid_birth_date"  # date part is no calendar date


@dataclass(frozen=True, slots=True)
class CprNumber:
    """A parsed CPR number. ``number`` is the compact 10-digit form."""

    number: str
    birth_date: date
    gender: Gender

    def age_at(self, reference_date: date) -> int:
        """Completed years at ``reference_date``; a 29 February birthday counts from 1 March."""
        return age_at(self.birth_date, reference_date)

    @property
    def masked(self) -> str:
        return mask_cpr(self.number)

    def __repr__(self) -> str:  # reprs end up in logs and tracebacks: never the full number
        return f"CprNumber({self.masked!r}, birth_date=<redacted>, gender={self.gender.value!r})"

    __str__ = __repr__


def compact_cpr(value: object) -> str:
    """Strip separators and whitespace; an integer (Excel dropped the leading zero) is re-padded.

    Only true numbers are padded: a 9-character *text* may as well be a mistyped number, and
    guessing there could send a letter with a citizen's name to a stranger.
    """
    if isinstance(value, bool):
        raise CprError("CPR number is a yes/no value, not a number")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, Integral):
        if value < 0:
            raise CprError("CPR number is negative")
        return f"{int(value):010d}"
    if not isinstance(value, str):
        raise CprError(f"CPR number has unexpected type {type(value).__name__}")
    if _TEN_ASCII_DIGITS.fullmatch(value):
        return value  # the common case; stdnum's Unicode clean-up is comparatively slow
    try:
        return stdnum_cpr.compact(value)
    except stdnum_errors.ValidationError:
        raise CprError("CPR number contains unreadable characters") from None


def mask_cpr(value: object) -> str:
    """DDMMYY-XXXX for anything shaped like a CPR number, XXXXXX-XXXX for everything else.

    The sequence digits are never shown. A value that is not ten digits is masked completely,
    because we cannot tell which of its digits belong to the date part.
    """
    try:
        number = compact_cpr(value)
    except CprError:
        return _MASK_UNKNOWN
    if not _TEN_ASCII_DIGITS.fullmatch(number):
        return _MASK_UNKNOWN
    return f"{number[:6]}-XXXX"


def format_cpr(number: str) -> str:
    """The standard DDMMYY-SSSS presentation (for letters; never for logs)."""
    return stdnum_cpr.format(number)


def gender_of(number: str) -> Gender:
    return Gender.MAND if int(number[9]) % 2 == 1 else Gender.KVINDE


def age_at(birth_date: date, reference_date: date) -> int:
    """Completed years at ``reference_date`` (Danish practice: 29 Feb birthdays count from 1 March)."""
    years = reference_date.year - birth_date.year
    if (reference_date.month, reference_date.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years


def parse_cpr(value: object, *, reference_date: date | None = None) -> CprNumber:
    """Parse and check a CPR number.

    Accepts "DDMMYYSSSS", "DDMMYY-SSSS" (spaces and dashes anywhere are ignored) and integers
    that lost their leading zero in Excel. Checks ten ASCII digits, a real calendar date under
    the century rule and, when ``reference_date`` is given, that the person was born by then.
    Raises ``CprError`` with the masked number at most.
    """
    number = compact_cpr(value)
    if not number:
        raise CprError("CPR number is empty")
    if not _TEN_ASCII_DIGITS.fullmatch(number):
        raise CprError(f"CPR number must be 10 digits (DDMMYY-SSSS), got {_shape_of(number)}")
    masked = f"{number[:6]}-XXXX"
    birth_date = _birth_date_or_none(number)
    if birth_date is None:
        if _non_date_kind(number) is NonPersonNumberKind.ERSTATNINGSPERSONNUMMER:
            raise CprError(f"{masked} is a substitute number (erstatningspersonnummer), not a CPR number")
        raise CprError(f"{masked} does not contain a valid birth date")
    if reference_date is not None and birth_date > reference_date:
        raise CprError(f"{masked}: birth date is after the reference date")
    return CprNumber(number=number, birth_date=birth_date, gender=gender_of(number))


def is_valid_cpr(value: object, *, reference_date: date | None = None) -> bool:
    try:
        parse_cpr(value, reference_date=reference_date)
    except CprError:
        return False
    return True


def non_person_number_kind(value: object) -> NonPersonNumberKind | None:
    """Recognise ten-digit values that can never be a real person's CPR number.

    Only documented rules are applied: a date part that is no calendar date under the century
    rule, and CPR-kontoret's recommended substitute-number construction (day raised by 60).
    Returns None for a number that *could* be real, and for values that are not ten digits
    (those are plain format errors). There is no public rule that marks test numbers otherwise:
    the national test CPR list is a list, not a pattern.
    """
    try:
        number = compact_cpr(value)
    except CprError:
        return None
    if not _TEN_ASCII_DIGITS.fullmatch(number) or _birth_date_or_none(number) is not None:
        return None
    return _non_date_kind(number)


def _non_date_kind(number: str) -> NonPersonNumberKind:
    """For ten digits whose date part is no calendar date: a substitute number, or just invalid."""
    day = int(number[:2])
    if day > _SUBSTITUTE_DAY_OFFSET:
        shifted = f"{day - _SUBSTITUTE_DAY_OFFSET:02d}{number[2:]}"
        if _birth_date_or_none(shifted) is not None:
            return NonPersonNumberKind.ERSTATNINGSPERSONNUMMER
    return NonPersonNumberKind.INVALID_BIRTH_DATE


def _birth_date_or_none(number: str) -> date | None:
    try:
        return stdnum_cpr.get_birth_date(number)
    except stdnum_errors.ValidationError:
        return None


def _shape_of(text: str) -> str:
    """Describe a malformed value without revealing it: "9 characters", "11 characters (non-digits)"."""
    description = f"{len(text)} characters"
    if not text.isascii() or not text.isdigit():
        description += " including non-digits"
    return description
