"""Free-text answers per municipality, with the publication's count rule.

Analytics already keeps them: ``response_fact.answers`` (JSONB) holds the whole answer set of
``response.submitted`` as sent, and responses scrubs free text of personal data before it
publishes (``services/responses/domain/scrubbing.py``). A free-text answer is a non-empty string
that is no scale code (:func:`answer_code` is None).

Disclosure rules: texts of a (round, municipality, question) are shown only when there are at
least ``min_count`` of them; the national list (all municipalities) only to a KL principal
(``kommuner:all``); a municipality user reads only its own. Texts are listed in alphabetical
order without bands, stratum or time, so a text cannot be tied to a person through the other
tables. No breakdown by target group or bands is offered: a small group's texts could be found by
differencing a group list against the municipality's.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from services.analytics.domain.answers import answer_code
from services.analytics.domain.publication import NATIONAL, natural_key
from services.analytics.models import ResponseFact
from shared.bus import UnitOfWork

# kl_core's free-text questions (services/responses/domain/questionnaires/kl_core_v1.json; q14's
# text is piped from q13, here its fallback wording).
LABELS = {
    "q14": {"da": "Vil du uddybe, hvordan du har oplevet dit forløb i jobcentret?",
            "en": "Would you like to tell us how you have experienced your course at the job centre?"},
    "q15": {"da": "Hvad kunne have gjort dit forløb i jobcentret bedre?",
            "en": "What could have made your course at the job centre better?"},
}
PAGE_SIZE = 50


def is_free_text(value: object) -> bool:
    return isinstance(value, str) and bool(value.strip()) and answer_code(value) is None


def label(question: str, lang: str) -> str:
    return LABELS.get(question, {}).get(lang, question)


@dataclass(frozen=True)
class FreeTexts:
    question: str
    count: int
    suppressed: bool
    texts: list[str]  # empty when suppressed


async def load(uow: UnitOfWork, round_id: str, kommune: str, min_count: int, version: int) -> dict[str, FreeTexts]:
    """Per question, the free texts of a municipality (or of all, for ``national``) as of the
    release at round ``version``: texts change only with a new release, as the tables do."""
    value = sa.func.jsonb_each(ResponseFact.answers).table_valued("key", "value").alias("a")
    query = (sa.select(value.c.key, value.c.value.op("#>>")(sa.literal_column("'{}'::text[]")))
             .select_from(ResponseFact).join(value, sa.true())
             .where(ResponseFact.round_id == round_id, ResponseFact.version <= version,
                    sa.func.jsonb_typeof(value.c.value) == "string"))
    if kommune != NATIONAL:
        query = query.where(ResponseFact.kommunekode == kommune)
    by_question: dict[str, list[str]] = {}
    for question, text in (await uow.session.execute(query)).all():
        if is_free_text(text):
            by_question.setdefault(question, []).append(text.strip())
    out = {}
    for question in sorted(set(by_question) | set(LABELS), key=natural_key):
        texts = sorted(by_question.get(question, []), key=str.casefold)
        hidden = len(texts) < min_count
        out[question] = FreeTexts(question, len(texts), hidden, [] if hidden else texts)
    return out
