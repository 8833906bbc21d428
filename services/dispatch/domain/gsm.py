"""SMS length arithmetic for the GSM 03.38 7-bit alphabet.

An SMS costs one segment up to 160 GSM-7 characters; a single character
outside the alphabet switches the whole text to UCS-2 (70 per segment).
Danish æøå/ÆØÅ are in the basic GSM alphabet, so Danish text stays cheap as
long as templates avoid typographic quotes, en-dashes and the like.
"""

from __future__ import annotations

from dataclasses import dataclass

# The basic character set (the escape code 0x1B is left out: it is not a
# character a text can contain).
_GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
# Extension-table characters cost two septets (escape + character).
_GSM7_EXTENDED = frozenset("^{}\\[~]|€\f")

GSM7_SINGLE = 160
GSM7_MULTI = 153
UCS2_SINGLE = 70
UCS2_MULTI = 67


@dataclass(frozen=True, slots=True)
class SmsLength:
    gsm7: bool
    """True when the text can be sent in the 7-bit GSM alphabet."""
    units: int
    """Septets for GSM-7, UTF-16 code units for UCS-2."""
    segments: int


def gsm7_septets(text: str) -> int | None:
    """Septets `text` needs in GSM-7, or None when it cannot be encoded."""
    septets = 0
    for ch in text:
        if ch in _GSM7_BASIC:
            septets += 1
        elif ch in _GSM7_EXTENDED:
            septets += 2
        else:
            return None
    return septets


def sms_length(text: str) -> SmsLength:
    septets = gsm7_septets(text)
    if septets is not None:
        single, multi, units = GSM7_SINGLE, GSM7_MULTI, septets
    else:
        single, multi = UCS2_SINGLE, UCS2_MULTI
        units = len(text.encode("utf-16-le")) // 2
    segments = 1 if units <= single else -(-units // multi)
    return SmsLength(gsm7=septets is not None, units=units, segments=segments)
