"""Property tests for the scrubber: whatever the surrounding Danish text, valid-looking CPR
numbers, phone numbers and e-mail addresses are removed, and scrubbing is idempotent."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from services.responses.domain.scrubbing import scrub

# database=None: nothing is written into the work tree; failures print their example anyway.
SETTINGS = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# Ordinary words from answers about job centres: no names, no cue words such as
# "sagsbehandler" (after which any capitalised word is a name), and no "kr"/"kroner"
# (an eight-digit number before "kr" is an amount, not a phone number).
WORDS = (
    "jeg har været ledig i to år og synes at jobcentret har hjulpet mig meget lidt "
    "samtalen var god men forløbet tog lang tid fordi der manglede en plan for praktik "
    "det var svært at få svar på mine beskeder hans per bo liv uge måned dagpenge ydelse "
    "kursus virksomhed job uddannelse ring skriv mail tlf nr mobil cpr ikke også altid "
    "aldrig måske hjælp tak venlig hilsen nej ja godt dårligt mere mindre borger tid"
).split()
PROPER_NOUNS = ["Aarhus", "Jobcenter", "Digital Post", "Jobnet", "MitID", "Vejle", "Danmark", "KL"]
LEFT = [" ", " (", ": ", " nr. ", " tlf.", " på ", "\n"]
RIGHT = [" ", ". ", ", ", ") ", "! ", "\n"]

word = st.sampled_from(WORDS)
proper_noun = st.sampled_from(PROPER_NOUNS)
small_number = st.integers(0, 999).map(str)
year = st.integers(1950, 2035).map(str)
amount = st.integers(1, 999).map(lambda n: f"{n}.000 kr")
date = st.tuples(st.integers(1, 28), st.integers(1, 12), st.integers(1990, 2030)).flatmap(
    lambda t: st.sampled_from([f"{t[0]:02d}-{t[1]:02d}-{t[2]}", f"{t[0]:02d}.{t[1]:02d}.{t[2]}", f"{t[0]}/{t[1]}"])
)
safe_number = st.one_of(small_number, year, amount, date)


@st.composite
def danish_text(draw, *, with_numbers: bool = True) -> str:
    """Sentences of ordinary words and proper nouns that are not names. A capital letter
    appears only where Danish puts one (sentence start, proper nouns): a capitalised "Hans"
    in mid-sentence *is* a name. Numbers (when allowed) are always separated by a word: two
    bare four-digit numbers side by side look exactly like a phone number."""
    parts: list[str] = []
    sentence_start = True
    for _ in range(draw(st.integers(0, 12))):
        token = draw(st.one_of(word, word, proper_noun))
        parts.append(token.capitalize() if sentence_start and token.islower() else token)
        if with_numbers and draw(st.booleans()):
            parts.append(draw(safe_number))
        end = draw(st.sampled_from(["", "", "", ".", ",", "!", "?"]))
        parts[-1] += end
        sentence_start = end in {".", "!", "?"}
    return " ".join(parts)


@st.composite
def embedded(draw, item: st.SearchStrategy[str], *, with_numbers: bool = True) -> tuple[str, str]:
    """``item`` inside Danish text, with a word directly on each side."""
    value = draw(item)
    text = (
        draw(danish_text(with_numbers=with_numbers))
        + " "
        + draw(word)
        + draw(st.sampled_from(LEFT))
        + value
        + draw(st.sampled_from(RIGHT))
        + draw(word)
        + " "
        + draw(danish_text(with_numbers=with_numbers))
    )
    return value, text


# --- generators of personal data ------------------------------------------------------------


@st.composite
def cpr_numbers(draw) -> str:
    day = f"{draw(st.integers(1, 31)):02d}"
    month = f"{draw(st.integers(1, 12)):02d}"
    yy = f"{draw(st.integers(0, 99)):02d}"
    yyyy = str(draw(st.integers(1900, 2025)))
    serial = f"{draw(st.integers(0, 9999)):04d}"
    return draw(
        st.sampled_from(
            [
                f"{day}{month}{yy}{serial}",
                f"{day}{month}{yy}-{serial}",
                f"{day}{month}{yy} {serial}",
                f"{day}{month}{yy} - {serial}",
                f"{day}{month}{yy}–{serial}",
                f"{day}.{month}.{yy}-{serial}",
                f"{day}.{month}.{yy} {serial}",
                f"{day}-{month}-{yy}-{serial}",
                f"{day} {month} {yy} {serial}",
                f"{day}.{month}.{yyyy}-{serial}",
            ]
        )
    )


@st.composite
def phone_numbers(draw) -> str:
    prefix = draw(st.sampled_from(["", "", "", "+45", "+45 ", "0045 ", "0045", "(+45) ", "+45-"]))
    first = draw(st.integers(0 if prefix else 2, 9))
    digits = str(first) + "".join(str(draw(st.integers(0, 9))) for _ in range(7))
    grouping = draw(st.sampled_from(["8", "2222", "44", "422"]))
    sep = draw(st.sampled_from([" ", "-", "."])) if grouping in ("2222", "44") else " "
    if grouping == "8":
        body = digits
    elif grouping == "2222":
        body = sep.join(digits[i : i + 2] for i in range(0, 8, 2))
    elif grouping == "44":
        body = f"{digits[:4]}{sep}{digits[4:]}"
    else:
        body = f"{digits[:4]} {digits[4:6]} {digits[6:]}"
    if not prefix and grouping == "44":
        # Documented exceptions without a country code: a year range ("2019-2020") and a
        # range of round numbers ("3000-4000") are kept as what they most likely are.
        left, right = int(digits[:4]), int(digits[4:])
        assume(not (sep == "-" and 1900 <= left <= 2099 and 1900 <= right <= 2099))
        assume(not (sep in " -" and left % 100 == 0 and right % 100 == 0))
    return prefix + body


_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)


@st.composite
def email_addresses(draw) -> str:
    local = draw(st.from_regex(r"[a-zæøå0-9]([a-zæøå0-9._+-]{0,15}[a-zæøå0-9])?", fullmatch=True))
    labels = draw(st.lists(_label, min_size=1, max_size=3))
    tld = draw(st.from_regex(r"[a-z]{2,6}", fullmatch=True))
    at = draw(st.sampled_from(["@", "@", "@", "(at)", " [at] "]))
    address = f"{local}{at}{'.'.join(labels)}.{tld}"
    return address.upper() if draw(st.integers(0, 9)) == 0 else address


# --- removal --------------------------------------------------------------------------------


@SETTINGS
@given(embedded(cpr_numbers()))
def test_cpr_numbers_are_always_removed(case: tuple[str, str]) -> None:
    cpr, text = case
    out = scrub(text)
    assert cpr not in out
    assert "[CPR]" in out


@SETTINGS
@given(embedded(cpr_numbers(), with_numbers=False))
def test_nothing_of_a_cpr_number_is_left(case: tuple[str, str]) -> None:
    _, text = case
    assert not re.search(r"[0-9]", scrub(text))


@SETTINGS
@given(embedded(phone_numbers()))
def test_phone_numbers_are_always_removed(case: tuple[str, str]) -> None:
    phone, text = case
    out = scrub(text)
    assert phone.strip() not in out
    assert "[TELEFON]" in out


@SETTINGS
@given(embedded(phone_numbers(), with_numbers=False))
def test_nothing_of_a_phone_number_is_left(case: tuple[str, str]) -> None:
    _, text = case
    assert not re.search(r"[0-9]", scrub(text))


@SETTINGS
@given(embedded(email_addresses()))
def test_email_addresses_are_always_removed(case: tuple[str, str]) -> None:
    address, text = case
    out = scrub(text)
    assert address.strip() not in out
    assert "[EMAIL]" in out
    assert "@" not in out and "(at)" not in out.lower() and "[at]" not in out.lower()


# --- no false positives on plain text -------------------------------------------------------


@SETTINGS
@given(danish_text())
def test_text_without_personal_data_is_unchanged(text: str) -> None:
    assert scrub(text) == text


# --- idempotence ----------------------------------------------------------------------------

_fragments = st.one_of(
    word,
    word.map(str.capitalize),
    proper_noun,
    safe_number,
    cpr_numbers(),
    phone_numbers(),
    email_addresses(),
    st.sampled_from(
        ["Mette", "Hansen", "Jensens", "Per", "Hans", "Lund", "Zofia", "sagsbehandler", "hedder",
         "fru", "Hr.", "H.", "K.", "Anne-Marie", "jeg", "hun", "navn", "er", "mette", "nielsen",
         "METTE", "Vej", "Boulevard", "[NAVN]", "[CPR]", "2019-2020", "3000-4000", "+45", "kr",
         "-", ",", ".", ":", "\n", "(", ")", "«", "»"]
    ),
)


@SETTINGS
@given(st.lists(_fragments, max_size=25), st.lists(st.sampled_from([" ", "", "  ", ", ", ". "]), min_size=25, max_size=25))
def test_scrubbing_is_idempotent_on_danish_fragments(fragments: list[str], gaps: list[str]) -> None:
    text = "".join(f + g for f, g in zip(fragments, gaps))
    once = scrub(text)
    assert scrub(once) == once


@SETTINGS
@given(
    st.text(
        alphabet=st.one_of(
            st.sampled_from(list("aeiouæøåAEIOUÆØÅbcdfghjklmnpqrstvBCDFGHJKLMNPRSTV0123456789 .,-+@()[]:\n\u00a0")),
            st.characters(),
        ),
        max_size=120,
    )
)
def test_scrubbing_is_idempotent_on_arbitrary_text(text: str) -> None:
    once = scrub(text)
    assert scrub(once) == once
