"""Tolerant matching of labels (column headers, benefit names) typed by people and case systems.

Headers and benefit names reach us through Excel, Windows code pages and hand edits, so the same
label shows up as "Forløb afsluttet", "FORLØB  AFSLUTTET", "Forloeb afsluttet", "Forlob afsluttet",
"Forl?b afsluttet" or the mojibake "ForlÃ¸b afsluttet". Matching happens in two tiers: an exact
key (case, whitespace and punctuation folded, æøå spelled ae/oe/aa), a word key that also
forgives word order, small filler words and common synonyms ("Ydelse startdato" = "Startdato
ydelse", "Telefonnummer" = "Tlf."), and, as a fallback, a consonant skeleton that also forgives
lost or mangled vowels. Callers must check that the
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


# Words that carry no meaning in a header ("Dato for seneste samtale" = "Seneste samtale dato").
_FILLER_WORDS = frozenset({"for", "af", "til", "pr", "paa", "i", "ved", "den", "det", "der", "og"})
# Spellings of one word in exports; each side maps to the left-hand form.
_SYNONYMS = {
    "nummer": "nr",
    "no": "nr",
    "tlf": "telefon",
    "telefonnummer": "telefon",
    "telefonnr": "telefon",
    "personnummer": "cpr",
    "personnr": "cpr",
    "cprnr": "cpr",
    "cprnummer": "cpr",
    "start": "startdato",
    "startdag": "startdato",
    "seneste": "sidste",
}


def label_words(label: object) -> str:
    """Word-tier key: the exact key's words, synonyms folded, filler dropped, sorted, so
    "Ydelse startdato", "Startdato - ydelse" and "Startdato for ydelse" agree."""
    words = (_SYNONYMS.get(word, word) for word in label_key(label).split())
    return " ".join(sorted(word for word in words if word not in _FILLER_WORDS))


def label_skeleton(label: object) -> str:
    """Fallback-tier key: consonants and digits only, so "Forløb", "Forlob" and "Forl?b" agree."""
    return _NOT_CONSONANT_OR_DIGIT.sub("", label_key(label).replace(" ", ""))


def is_blank(value: object) -> bool:
    """True for None and for strings that hold only whitespace."""
    return value is None or (isinstance(value, str) and not value.strip())
