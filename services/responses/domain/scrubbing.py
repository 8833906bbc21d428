"""Remove personal data from free-text answers before they leave the responses service.

Citizens write about their caseworkers by name, paste their CPR number "so you can find my
case" and leave a phone number to be called back. None of that may reach KL's or the
municipalities' dashboards. ``scrub`` replaces it with tokens:

    [CPR]      CPR numbers: 010190-1234, 0101901234, 010190 1234, 01.01.90-1234, 01.01.1990-1234
    [TELEFON]  Danish phone numbers: 8 digits as 20304050, 20 30 40 50, 2030 4050, 2030-4050,
               20.30.40.50, 2030 40 50, with or without +45 / 0045 / (+45)
    [EMAIL]    e-mail addresses, also written with "(at)" or "[at]"
    [NAVN]     names where recognisable: known Danish first names and surnames (data/),
               capitalised words after a cue ("min sagsbehandler Mette", "jeg hedder ...",
               "fru Jensen"), and first-name + surname sequences

Design choices:

* Rule-based, with word lists shipped as data: no model can be downloaded at run time, and
  rules can be read and reviewed by a DPO.
* When in doubt about *numbers*, remove: a date or amount written in an odd format may be
  lost, a leaked phone number may not. Dates with separators (12-05-2023), amounts
  (12.000 kr, 3000 kroner), years and year ranges (2019-2020) are recognised and kept.
* *Names* are harder, because capitalised words are everywhere in Danish (sentence starts,
  "Jobcenter Aarhus", "Digital Post"). Names that are also ordinary words (Per, Bo, Hans,
  Lund, Skov) only count when the context says so.
* ``scrub`` is idempotent by construction: it repeats its passes until the text stops
  changing, because some rules look at context that a replacement can change.

Known limitations (see also the tests' corpus): names not in the lists and without a cue
("jeg talte med Zofia") are kept; lowercase names are only caught after a cue or as a known
first name + surname pair; addresses, case numbers and bank account numbers are not
scrubbed; phone numbers in rare groupings (3-3-2, 2-2-4) or spelled out in words are kept.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Literal

CPR_TOKEN = "[CPR]"
PHONE_TOKEN = "[TELEFON]"
EMAIL_TOKEN = "[EMAIL]"
NAME_TOKEN = "[NAVN]"

Kind = Literal["cpr", "telefon", "email", "navn"]

# Passes until the text is stable. Each pass that changes anything replaces at least one
# word or number with a token that no rule matches, so this bound is never reached in practice;
# it only guards against a future rule that could oscillate.
_MAX_PASSES = 8


@dataclass(frozen=True)
class ScrubResult:
    text: str
    #: How many of each kind were replaced. Deliberately no record of *what* was removed:
    #: logging the removed values would recreate the leak this module prevents.
    counts: dict[str, int]

    @property
    def changed(self) -> bool:
        return bool(self.counts)


def scrub(text: str) -> str:
    """``text`` with CPR numbers, phone numbers, e-mail addresses and names replaced by tokens."""
    return scrub_with_report(text).text


def scrub_with_report(text: str) -> ScrubResult:
    counts: Counter[str] = Counter()
    # NFC first: a letter typed as base + combining accent ("é", "å") must match the lists.
    current = unicodedata.normalize("NFC", text)
    for _ in range(_MAX_PASSES):
        scrubbed = _scrub_once(current, counts)
        if scrubbed == current:
            break
        current = scrubbed
    return ScrubResult(text=current, counts=dict(counts))


def _scrub_once(text: str, counts: Counter[str]) -> str:
    # Order matters: e-mail addresses contain names and digits, CPR numbers contain what
    # looks like 8-digit phone numbers, so the more specific patterns go first.
    for kind, pattern, token in _NUMBER_RULES:
        text, n = pattern.subn(token, text)
        if n:
            counts[kind] += n
    text, n = _scrub_names(text)
    if n:
        counts["navn"] += n
    return text


# --- numbers and e-mail addresses ------------------------------------------------------------------

# Spaces inside a number, incl. the no-break spaces that come with text pasted from Word.
# Not tabs: a tab separates table cells, not digit groups.
_SP = r"[ \u00a0\u202f]"
_DASH = r"[-\u2010\u2011\u2012\u2013\u2212]"
# A match must not be the tail or the head of a longer number (including decimals).
_NOT_AFTER_NUMBER = r"(?<![0-9])(?<![0-9][.,])"
_NOT_BEFORE_NUMBER = r"(?![0-9])(?![.,][0-9])"

_EMAIL = re.compile(
    r"[\w.+-]+"
    r"(?:@|" + _SP + r"?(?:\(at\)|\[at\])" + _SP + r"?)"
    r"[\w-]+(?:\.[\w-]+)*\.[^\W\d_]{2,}",
    re.IGNORECASE,
)

# The first six digits of a CPR number are the birth date. Requiring a valid day and month
# keeps most other 10-digit numbers (and dates followed by a time) out.
_DAY = r"(?:0[1-9]|[12][0-9]|3[01])"
_MONTH = r"(?:0[1-9]|1[0-2])"
_CPR = re.compile(
    _NOT_AFTER_NUMBER
    + _DAY
    + rf"(?P<sep>(?:{_SP}|[.\-])?)"
    + _MONTH
    + r"(?P=sep)"
    + r"(?:19|20)?[0-9]{2}"  # a four-digit birth year is still a CPR number
    + rf"(?:{_SP}*(?:{_DASH}|\.){_SP}*|{_SP})?"
    + r"[0-9]{4}"
    + _NOT_BEFORE_NUMBER
)


def _phone_body(first_digit: str, tag: str, *, standalone: bool) -> str:
    sep = rf"(?:{_SP}|[.\-])"
    # A grouped number inside a run of numbers ("2022 2023 2024", "10 20 30 40 50") is a
    # table or a list, not a phone number; a phone number stands alone.
    before = rf"(?<![0-9]{_SP})" if standalone else ""
    after = rf"(?!{_SP}[0-9])" if standalone else ""
    return (
        "(?:"
        + rf"{first_digit}[0-9]{{7}}"
        + rf"|{before}{first_digit}[0-9](?P<s{tag}>{sep})[0-9]{{2}}(?P=s{tag})[0-9]{{2}}(?P=s{tag})[0-9]{{2}}{after}"
        + rf"|{before}{first_digit}[0-9]{{3}}{sep}[0-9]{{4}}{after}"
        + rf"|{before}{first_digit}[0-9]{{3}}{_SP}[0-9]{{2}}{_SP}[0-9]{{2}}{after}"
        + ")"
    )


# With a country code the number is certainly a phone number, whatever it starts with.
# A bare "45" counts as the code only before four pairs ("45 20 30 40 50").
_PHONE_WITH_PREFIX = re.compile(
    r"(?<!\w)"
    + rf"(?:\(?(?:\+|00){_SP}?45\)?|45(?={_SP}[0-9]{{2}}{_SP}[0-9]{{2}}{_SP}[0-9]{{2}}{_SP}[0-9]{{2}}(?![0-9])))"
    + rf"(?:{_SP}|{_DASH}|\.)*"
    + _phone_body("[0-9]", "p", standalone=False)
    + _NOT_BEFORE_NUMBER
)

# Without a country code: Danish subscriber numbers start with 2-9 (0 and 1 are prefixes and
# service numbers), which keeps dates like 12052023 and most serial numbers out.
_AMOUNT_AFTER = rf"(?!{_SP}*(?:kr\b|kr\.|kroner|dkk\b|,-|\.-|,00))"
_AMOUNT_BEFORE = r"(?<!kr)(?<!kr\.)(?<!kr )(?<!kr\. )(?<!dkk)(?<!dkk )"
_YEAR_RANGE = rf"(?!(?:19|20)[0-9]{{2}}{_SP}?{_DASH}{_SP}?(?:19|20)[0-9]{{2}}(?![0-9]))"
_ROUND_RANGE = rf"(?![0-9]{{2}}00(?:{_SP}|{_DASH})[0-9]{{2}}00(?![0-9]))"  # "3000-4000 ansøgninger"
_PHONE = re.compile(
    _NOT_AFTER_NUMBER
    + _AMOUNT_BEFORE
    + _YEAR_RANGE
    + _ROUND_RANGE
    + _phone_body("[2-9]", "n", standalone=True)
    + _NOT_BEFORE_NUMBER
    + _AMOUNT_AFTER,
    re.IGNORECASE,
)

_NUMBER_RULES: tuple[tuple[Kind, re.Pattern[str], str], ...] = (
    ("email", _EMAIL, EMAIL_TOKEN),
    ("cpr", _CPR, CPR_TOKEN),
    ("telefon", _PHONE_WITH_PREFIX, PHONE_TOKEN),
    ("telefon", _PHONE, PHONE_TOKEN),
)


# --- names ----------------------------------------------------------------------------------

# Words after which a capitalised word (or a known name in lower case) is a person's name.
_TITLE_CUES = frozenset(
    """
    sagsbehandler sagsbehandleren socialrådgiver socialrådgiveren rådgiver rådgiveren
    jobkonsulent jobkonsulenten virksomhedskonsulent virksomhedskonsulenten konsulent
    konsulenten mentor mentoren vejleder vejlederen kontaktperson kontaktpersonen
    jobformidler jobformidleren koordinator koordinatoren læge lægen psykolog psykologen
    psykiater psykiateren fysioterapeut fysioterapeuten sygeplejerske sygeplejersken
    terapeut terapeuten leder lederen chef chefen teamleder teamlederen afdelingsleder
    afdelingslederen underviser underviseren lærer læreren coach coachen medarbejder
    medarbejderen
    """.split()
)
# "hedder"/"hed" name a person only after a person: "jeg hedder", "min mentor hed". After
# anything else it names things ("kurset hed Fremtidens Job"), which must stay.
_NAMING_VERBS = frozenset({"hedder", "hed"})
_PERSONS = frozenset({"jeg", "han", "hun", "du", "vedkommende"}) | _TITLE_CUES
# Abbreviated forms of address, which may be followed by a full stop ("Hr. Hansen").
_HONORIFICS = frozenset({"hr", "fru", "frk", "dr"})
_NAME_GAP = re.compile(r"^[ \u00a0]$")
_CUE_GAP = re.compile(r"^[,:]?[ \u00a0]+$")
_HONORIFIC_GAP = re.compile(r"^\.?[ \u00a0]+$")
_INITIAL_GAP = re.compile(r"^\.[ \u00a0]?$")
# Characters that may stand between a sentence boundary and the first word of the sentence.
_SENTENCE_LEAD = frozenset(" \t\u00a0\"'«»“”„‘’(*•–-")
_SENTENCE_END = frozenset(".!?:;\n")
# Letters, plus combining marks: "ø" has no precomposed form to normalise to, so "o" followed by
# U+0338 must not split "Søren" into two words (and leave half a name behind).
_LETTERS = r"(?:[^\W\d_]|[\u0300-\u036f])+"
_WORD = re.compile(rf"{_LETTERS}(?:-{_LETTERS})*")
_STREET_SUFFIXES = ("vej", "gade", "allé", "alle", "plads", "stræde", "vænge", "torv")


@dataclass(frozen=True)
class _Lexicon:
    first: frozenset[str]
    surnames: frozenset[str]
    ambiguous: frozenset[str]
    not_names: frozenset[str]
    street: frozenset[str]
    function_words: frozenset[str]


def _read_words(name: str) -> frozenset[str]:
    text = (resources.files(__package__) / "data" / name).read_text(encoding="utf-8")
    return frozenset(
        unicodedata.normalize("NFC", line.strip()).lower()
        for line in text.splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )


@lru_cache(maxsize=1)
def _lexicon() -> _Lexicon:
    street = _read_words("street_words.txt")
    return _Lexicon(
        first=_read_words("first_names.txt"),
        surnames=_read_words("surnames.txt"),
        ambiguous=_read_words("ambiguous_names.txt"),
        not_names=_read_words("not_names.txt") | street,
        street=street,
        function_words=_read_words("function_words.txt"),
    )


@dataclass(frozen=True)
class _Token:
    start: int
    end: int
    text: str
    capitalised: bool  # "Mette", "Anne-Mette"
    all_caps: bool  # "METTE", "KL"
    first: bool  # a known first name (also in the genitive: "Mettes")
    surname: bool
    ambiguous: bool  # also an ordinary word or place
    blocked: bool  # never part of a name
    sentence_initial: bool

    @property
    def known(self) -> bool:
        return self.first or self.surname

    @property
    def lowercase(self) -> bool:
        return self.text.islower()

    @property
    def strong(self) -> bool:
        """A known, unambiguous name written with a capital (or in capitals)."""
        return self.known and not self.ambiguous and (self.capitalised or self.all_caps)

    @property
    def name_shaped(self) -> bool:
        """Could be part of a name: capitalised, not a listed non-name, not an acronym."""
        return len(self.text) >= 2 and not self.blocked and (
            self.capitalised or (self.all_caps and self.known)
        )


def _lookup(word: str, names: frozenset[str]) -> bool:
    parts = word.lower().split("-")
    # The genitive ("Mettes sagsbehandler", "Jensens kontor") is the name plus -s.
    return any(p in names or (p.endswith("s") and p[:-1] in names) for p in parts)


def _is_sentence_initial(text: str, start: int) -> bool:
    i = start - 1
    while i >= 0 and text[i] in _SENTENCE_LEAD:
        i -= 1
    return i < 0 or text[i] in _SENTENCE_END


def _tokens(text: str, lex: _Lexicon) -> list[_Token]:
    tokens = []
    for m in _WORD.finditer(text):
        word = m.group()
        lower = word.lower()
        parts = word.split("-")
        capitalised = all(p[0].isupper() and (len(p) == 1 or not p.isupper()) for p in parts)
        all_caps = len(word) >= 2 and word.isupper()
        first = _lookup(word, lex.first)
        surname = _lookup(word, lex.surnames)
        ambiguous = lower in lex.ambiguous or (lower.endswith("s") and lower[:-1] in lex.ambiguous)
        known = first or surname
        blocked = (
            lower in lex.not_names
            or lower in _TITLE_CUES
            or lower in _HONORIFICS
            or (lower.endswith(_STREET_SUFFIXES) and len(lower) > 6)
            # "hans" is both a function word and a name: it stays a (careful) name candidate.
            or (lower in lex.function_words and not known)
        )
        tokens.append(
            _Token(
                start=m.start(),
                end=m.end(),
                text=word,
                capitalised=capitalised,
                all_caps=all_caps,
                first=first and not blocked,
                surname=surname and not blocked,
                ambiguous=ambiguous,
                blocked=blocked,
                sentence_initial=_is_sentence_initial(text, m.start()),
            )
        )
    return tokens


class _NameFinder:
    """Finds name spans as (first token index, last token index) over one text."""

    def __init__(self, text: str, lex: _Lexicon) -> None:
        self.text = text
        self.lex = lex
        self.tokens = _tokens(text, lex)

    def gap(self, i: int) -> str:
        """The text between token i and token i + 1."""
        return self.text[self.tokens[i].end : self.tokens[i + 1].start]

    def joined(self, i: int) -> bool:
        return i + 1 < len(self.tokens) and bool(_NAME_GAP.match(self.gap(i)))

    def spans(self) -> Iterator[tuple[int, int]]:
        i = 0
        floor = 0  # a span never reaches back into the previous one
        while i < len(self.tokens):
            mode = self.seed(i)
            if mode is None:
                i += 1
                continue
            last = self.extend_right(i, lowercase=(mode == "lower"))
            first = self.extend_left(i, floor, lowercase=(mode == "lower"))
            if not self.is_address(last):
                yield first, last
            i = floor = last + 1

    def seed(self, i: int) -> Literal["cap", "lower"] | None:
        tok = self.tokens[i]
        if self.after_cue(i):
            if tok.name_shaped:
                return "cap"
            if tok.lowercase and tok.first and not tok.ambiguous:
                return "lower"
        if tok.strong:
            return "cap"
        if tok.capitalised and tok.known and tok.ambiguous:
            # "Per", "Hans", "Lund": a name next to another name ("Hans Jensen", "Per Holm"),
            # or a first name capitalised mid-sentence where grammar does not explain it.
            nxt = self.tokens[i + 1] if self.joined(i) else None
            if nxt is not None and nxt.known and nxt.name_shaped:
                return "cap"
            if tok.first and not tok.sentence_initial:
                return "cap"
            return None
        if tok.lowercase and tok.known and not tok.ambiguous:
            # In lower case a lone first name may be a word ("line", "ane", "signe"), but a
            # surname from the list is not ("hansen"); "mette hansen" is a name as a pair.
            if tok.surname and not tok.first:
                return "lower"
            nxt = self.tokens[i + 1] if self.joined(i) else None
            if nxt is not None and nxt.lowercase and nxt.surname and not nxt.ambiguous:
                return "lower"
        return None

    def after_cue(self, i: int) -> bool:
        if i == 0:
            return False
        prev = self.tokens[i - 1].text.lower()
        gap = self.gap(i - 1)
        if prev in _HONORIFICS:
            return bool(_HONORIFIC_GAP.match(gap))
        if prev in _TITLE_CUES:
            return bool(_CUE_GAP.match(gap))
        if prev in _NAMING_VERBS and i >= 2 and self.tokens[i - 2].text.lower() in _PERSONS:
            return bool(_CUE_GAP.match(gap)) and self.joined(i - 2)
        if prev == "er" and i >= 2 and self.tokens[i - 2].text.lower() in ("navn", "navnet"):
            return bool(_CUE_GAP.match(gap)) and self.joined(i - 2)  # "mit navn er Mette"
        return False

    def extend_right(self, i: int, *, lowercase: bool) -> int:
        last = i
        while last - i < 3 and last + 1 < len(self.tokens):
            nxt = last + 1
            if lowercase:
                tok = self.tokens[nxt]
                fits = self.joined(last) and tok.lowercase and tok.known and not tok.ambiguous
            elif self.is_initial(last):
                fits = bool(_INITIAL_GAP.match(self.gap(last))) and self.tokens[nxt].name_shaped
            else:
                # "Mette Hansen", "Mette K. Hansen"
                fits = self.joined(last) and (self.tokens[nxt].name_shaped or self.is_initial(nxt))
            if not fits:
                break
            last = nxt
        return last

    def extend_left(self, i: int, floor: int, *, lowercase: bool) -> int:
        # Only from a surname: in "Zofia Jensen" the unknown word before a surname is the
        # first name, but in "Søde Mette" the word before a first name is just an adjective.
        tok = self.tokens[i]
        if not (tok.surname and not tok.first):
            return i
        first = i
        while i - first < 3 and first > floor:
            prev = self.tokens[first - 1]
            if lowercase:
                # "per nielsen": next to a surname even an ambiguous first name is a name.
                fits = self.joined(first - 1) and prev.lowercase and prev.first
            elif self.is_initial(first - 1):
                fits = bool(_INITIAL_GAP.match(self.gap(first - 1)))  # "H.C. Andersen"
            else:
                fits = self.joined(first - 1) and prev.capitalised and prev.name_shaped
            if not fits:
                break
            first -= 1
        return first

    def is_initial(self, i: int) -> bool:
        """A single capital letter followed by a full stop: a middle or first initial."""
        tok = self.tokens[i]
        return (
            len(tok.text) == 1
            and tok.text.isupper()
            and tok.end < len(self.text)
            and self.text[tok.end] == "."
        )

    def is_address(self, last: int) -> bool:
        # "Jens Baggesens Vej 12" names a street, not a person.
        if not self.joined(last):
            return False
        nxt = self.tokens[last + 1].text.lower()
        return nxt in self.lex.street or (nxt.endswith(_STREET_SUFFIXES) and len(nxt) > 6)


def _scrub_names(text: str) -> tuple[str, int]:
    finder = _NameFinder(text, _lexicon())
    pieces: list[str] = []
    position = 0
    count = 0
    for first, last in finder.spans():
        start, end = finder.tokens[first].start, finder.tokens[last].end
        between = text[position:start]
        if count and between.strip(" \u00a0") == "":
            # Names only separated by a space ("Line Bachmann Lund Claus Ørum Mogensen") are
            # one run of names: a single token reads better than "[NAVN] [NAVN]".
            position = end
            continue
        pieces.append(between)
        pieces.append(NAME_TOKEN)
        position = end
        count += 1
    pieces.append(text[position:])
    return "".join(pieces), count
