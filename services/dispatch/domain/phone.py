"""Phone numbers as SMS gateways want them: E.164 ("+4512345678").

Case systems deliver numbers in every shape ("12 34 56 78", "0045 12345678",
"+45-12345678"); bare 8-digit numbers are Danish.
"""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[\s\-.()/]")
_E164 = re.compile(r"\+[1-9]\d{6,14}")


def to_e164(raw: str, *, default_country_code: str = "45") -> str | None:
    """Normalise `raw` to E.164, or None when it is not a usable number."""
    number = _SEPARATORS.sub("", raw)
    if number.startswith("00"):
        number = "+" + number[2:]
    elif not number.startswith("+"):
        # Danish numbers have 8 digits and no trunk prefix.
        if default_country_code == "45" and not re.fullmatch(r"\d{8}", number):
            return None
        number = f"+{default_country_code}{number}"
    if not _E164.fullmatch(number):
        return None
    if number.startswith("+45") and len(number) != 11:
        return None
    return number
