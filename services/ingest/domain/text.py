"""Tolerant matching of labels (column headers, benefit names) typed by people and case systems.

Headers and benefit names reach us through Excel, Windows code pages and hand edits, so the same
label shows up as "Forløb afsluttet", "FORLØB  AFSLUTTET", "Forloeb afsluttet", "Forlob afsluttet",
"Forl?b afsluttet" or the mojibake "ForlÃ¸b afsluttet". Matching happens in two tiers: an exact
key (case, whitespace and punctuation folded, æøå spelled ae/oe/aa) and, as a fallback, a
consonant skeleton that also forgives lost or mangled vowels. Callers must check that the
skeletons of their own vocabulary are unique, so the fallback can never pick the wrong label.
"""

from __future__ import annotations

import re
import unicodedata

_DANISH_LETTERS = str.maketrans({"æ": "ae", "ø": "oe", "å": "aa", "ä": "ae", "ö": "oe", "ü": "ue"})
_NON_ALPHANUMERIC = re.compile(r"[^a-z0-9]+")
_NOT_CONSONANT_OR_DIGIT = re.compile(r"[^b-df-hj-np-tv-xz0-9]")  # drops vowels incl. y, and ?/�
_MOJIBAKE_MARKERS = ("Ã", "Â")


def repair_mojibake(text: str) -> str:
    """Undo UTF-8 bytes that were decoded as Windows-1252 ("ForlÃ¸b" -> "Forløb").

    Only attempted when the telltale lead characters are present, and only kept when the round
    trip succeeds, so correct text is never altered.
    """
    if not any(marker in text for marker in _MOJIBAKE_MARKERS):
        return text
    try:
        return text.encode("cp1252").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


def label_key(label: object) -> str:
    """Exact-tier key: "  Forløb-afsluttet " and "forloeb afsluttet" both give "forloeb afsluttet"."""
    text = unicodedata.normalize("NFKC", repair_mojibake(str(label))).casefold()
    text = text.translate(_DANISH_LETTERS)
    return _NON_ALPHANUMERIC.sub(" ", text).strip()


def label_skeleton(label: object) -> str:
    """Fallback-tier key: consonants and digits only, so "Forløb", "Forlob" and "Forl?b" agree."""
    return _NOT_CONSONANT_OR_DIGIT.sub("", label_key(label).replace(" ", ""))


def is_blank(value: object) -> bool:
    """True for None and for strings that hold only whitespace."""
    return value is None or (isinstance(value, str) and not value.strip())
