"""The web form's own wording (the questions themselves are questionnaire data), one JSON file
per language in ``page_texts/``: ``{"status", "date_format", "months", "texts"}``. Danish is the
source, in plain words, short sentences, no jargon (klarsprog); easy-read Danish (``da-x-let``)
has one idea per sentence and everyday words. ``status`` is ``draft`` until a person has
reviewed the translation (docs/languages.md). A key a translation lacks shows the Danish text;
tests/responses/unit/test_responses_translations.py reports every file that lacks one."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from collections.abc import Sequence

from services.responses.domain.languages import LANGUAGES, SOURCE_LANGUAGE, ReviewStatus, offered_languages, weakest
from services.responses.domain.translations import questionnaire_status

PAGE_TEXTS_DIR = Path(__file__).with_name("page_texts")


def _load(lang: str) -> dict:
    return json.loads((PAGE_TEXTS_DIR / f"{lang}.json").read_text(encoding="utf-8"))


_FILES: dict[str, dict] = {lang: _load(lang) for lang in LANGUAGES}
SOURCE_TEXTS: dict[str, str] = _FILES[SOURCE_LANGUAGE]["texts"]

#: Each language's page texts, every key present (Danish where the translation lacks one).
TEXTS: dict[str, dict[str, str]] = {
    lang: {**SOURCE_TEXTS, **{k: v for k, v in doc["texts"].items() if k in SOURCE_TEXTS and v}}
    for lang, doc in _FILES.items()
}
#: The review status of each language's page texts.
PAGE_STATUS: dict[str, ReviewStatus] = {lang: doc["status"] for lang, doc in _FILES.items()}


def offered_for(questionnaire_key: str | None, round_languages: Sequence[str] | None,
                required: ReviewStatus | None) -> tuple[str, ...]:
    """The languages a round offers a citizen whose questionnaire is ``questionnaire_key`` (None:
    the pages alone): each language's status is the weakest of its page texts and the
    questionnaire's translations; ``offered_languages`` applies the round's choice (round.defined's
    ``languages`` and ``translation_status``). The pages' menu and the letters' lines both use it."""
    status_of = {
        lang: weakest([PAGE_STATUS[lang], *([questionnaire_status(questionnaire_key, lang)] if questionnaire_key else [])])
        for lang in LANGUAGES
    }
    return offered_languages(status_of, round_languages, required or "draft")


def raw_page_texts(lang: str) -> dict[str, str]:
    """The page texts exactly as the language's file has them (for coverage checks)."""
    return dict(_FILES[lang]["texts"])


def long_date(day: date, lang: str) -> str:
    """"3. oktober 2026" / "3 October 2026" / "3 жовтня 2026"."""
    doc = _FILES.get(lang, _FILES[SOURCE_LANGUAGE])
    return doc["date_format"].format(day=day.day, month=doc["months"][day.month - 1], year=day.year)


def number(n: int, lang: str) -> str:
    """``n`` with the language's thousands separator (none where the language writes none)."""
    return f"{n:,}".replace(",", TEXTS[lang]["thousands"])
