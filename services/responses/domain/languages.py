"""The languages a citizen can answer in, and which of them a round offers (pure).

Danish is the source of every text; every other language is a translation with a review status.
A round (round.defined: ``languages``, ``translation_status``) names the languages it offers
(empty: all) and the status a translation must have; a language is offered when every part of
the citizen's pages meets it: the page texts and each questionnaire component's translation.
Danish is always offered: it is what everything falls back to.

``da-x-let`` is easy-read Danish (let dansk). BCP 47 has no registered subtag for easy-read, so
it is a private-use extension of ``da``: the primary subtag stays Danish, which is what screen
readers pick their voice from and what ``lang`` validators check, and ``let`` is the Danish
name of the register.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from shared.events import SURVEY_LANGUAGES

ReviewStatus = Literal["draft", "reviewed"]
SOURCE_LANGUAGE = "da"
EASY_DANISH = "da-x-let"
#: Every language the platform has texts for, in the order the language menu lists them (the
#: contract's list: a round names its languages from it).
LANGUAGES: tuple[str, ...] = SURVEY_LANGUAGES
RIGHT_TO_LEFT = frozenset({"ar"})
#: Each language's name in itself (the menu shows every name in its own language).
NATIVE_NAMES: Mapping[str, str] = {
    "da": "Dansk",
    EASY_DANISH: "Let dansk",
    "en": "English",
    "ar": "العربية",
    "uk": "Українська",
    "tr": "Türkçe",
    "so": "Soomaali",
    "pl": "Polski",
}
_RANK = {"draft": 0, "reviewed": 1}


def direction(lang: str) -> str:
    return "rtl" if lang in RIGHT_TO_LEFT else "ltr"


def meets(status: ReviewStatus | None, required: ReviewStatus) -> bool:
    """A translation with ``status`` (None: there is none) may be offered where ``required`` is asked."""
    return status is not None and _RANK[status] >= _RANK[required]


def weakest(statuses: Iterable[ReviewStatus | None]) -> ReviewStatus | None:
    """The status of a whole made of parts: the weakest part's (None if any part is missing)."""
    result: ReviewStatus | None = "reviewed"
    for status in statuses:
        if status is None:
            return None
        if _RANK[status] < _RANK[result]:  # type: ignore[index]
            result = status
    return result


def offered_languages(
    status_of: Mapping[str, ReviewStatus | None],
    round_languages: Sequence[str] | None = None,
    required: ReviewStatus = "draft",
) -> tuple[str, ...]:
    """The languages a round offers, in menu order: those it names (none named: all) whose
    status in ``status_of`` meets ``required``; Danish always."""
    wanted = set(round_languages) if round_languages else set(LANGUAGES)
    return tuple(
        lang for lang in LANGUAGES
        if lang == SOURCE_LANGUAGE or (lang in wanted and meets(status_of.get(lang), required))
    )
