"""A kommunekode as analytics' callers write it: 3 digits ("751", as stored and shown) or the 4
that registers and many exports write ("0751"). One home for reading it in analytics: the
tables' filters (JSON and OData) and the BI keys."""

from __future__ import annotations

import re

_CODE = re.compile(r"^(?:[0-9]{3}|0[0-9]{3})$")


def parse(text: str) -> str:
    """The stored form (3 digits) of a kommunekode given as 3 or 4 digits; ValueError otherwise."""
    if not _CODE.fullmatch(text):
        raise ValueError(f"{text!r} is not a kommunekode (3 digits, e.g. 751, or 4 with a leading zero, e.g. 0751)")
    return text[-3:]


def stored(text: str | None) -> str | None:
    """A filter's value on the kommunekode column: a code in its stored form, anything else
    ("national", or a value no row has) as it is."""
    return text[-3:] if text is not None and _CODE.fullmatch(text) else text
