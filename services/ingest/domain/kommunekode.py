"""A municipality code as it comes in: 3 digits ("101", as stored and shown everywhere) or the
4 digits registers and many exports write ("0101"). One home for reading it: the upload paths
and the round definition's list of municipalities call :func:`parse`."""

from __future__ import annotations

import re

# 3 digits, or 4 with a leading zero: Danish kommunekoder run 101..860, so a 4-digit code whose
# first digit is not 0 is no kommunekode (a region code 1081..1085, a typo).
PATTERN = r"^([0-9]{3}|0[0-9]{3})$"
_CODE = re.compile(PATTERN)


class NotAKommunekode(ValueError):
    pass


def parse(value: str) -> str:
    """The stored form (3 digits) of a kommunekode given as 3 or 4 digits."""
    text = value.strip()
    if not _CODE.fullmatch(text):
        raise NotAKommunekode(f"{value!r} is not a kommunekode (3 digits, e.g. 101, or 4 with a leading zero, e.g. 0101)")
    return text[-3:]


def is_kommunekode(value: str) -> bool:
    try:
        parse(value)
    except NotAKommunekode:
        return False
    return True
