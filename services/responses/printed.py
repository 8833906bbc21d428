"""The questionnaire for print: what responses tells dispatch, on ``questionnaire.offered``, so
dispatch can print a citizen's paper questionnaire at send time without reading responses' tables.

Responses owns the questionnaire (published files, supplements, the round's configuration);
dispatch owns the letters, the link and the answer id. The flattened questionnaire, in every
language the questionnaire has, travels as state: sent again whenever the round's definition
(round.defined) or its questionnaire (``PUT /api/admin/rounds/{id}/questionnaire``) changes.

Flattening chooses the paper wording: a question whose text pipes an earlier answer in gets its
fallback sentence (paper cannot pipe), and a text missing in a language is the Danish one,
named in ``fallback_to_da`` so the gap is visible, never a blank.
"""

from __future__ import annotations

from datetime import UTC, datetime

from services.responses.config import ResponsesSettings
from services.responses.domain import Questionnaire
from services.responses.models import RoundQuestionnaire, RoundState
from services.responses.questionnaires import questionnaire_for_round
from services.responses.texts import offered_for
from shared.bus import UnitOfWork
from shared.events import (
    OfferedQuestionnaire,
    PrintedOption,
    PrintedQuestion,
    PrintedQuestionnaire,
    PrintedTheme,
    QuestionnaireOffered,
)

EVERY_MUNICIPALITY = "*"


def _in(text, language: str) -> str | None:
    """The text in ``language``, or None when the translation lacks it."""
    if text is None:
        return None
    value = getattr(text, language, None)
    return value or None


def printable(questionnaire: Questionnaire, language: str) -> PrintedQuestionnaire:
    """``questionnaire`` in ``language`` for print, Danish where a text is missing."""
    missing: list[str] = []

    def text(value, where: str) -> str:
        found = _in(value, language)
        if found is None:
            missing.append(where)
            return value.da
        return found

    themes = []
    for theme in questionnaire.themes:
        questions = []
        for q in theme.questions:
            source = q.piping[0].fallback if q.piping else q.text
            scale = questionnaire.scale(q.scale) if q.scale else None
            options = [PrintedOption(value=o.value, label=text(o.label, f"{q.id}.{o.value}")) for o in scale.options] if scale else []
            questions.append(PrintedQuestion(
                id=q.id, kind=q.kind, text=text(source, q.id), help=text(q.help, f"{q.id}.help") if q.help else None,
                options=options, max_length=q.max_length,
            ))
        themes.append(PrintedTheme(title=text(theme.title, theme.id), questions=questions))
    return PrintedQuestionnaire(language=language, title=text(questionnaire.title, "title"), themes=themes,
                                fallback_to_da=list(dict.fromkeys(missing)))


def offered(questionnaire: Questionnaire, round_definition: dict | None = None) -> OfferedQuestionnaire:
    """The questionnaire for print in every language it has, and the languages the round offers
    (``round_definition``: round.defined's payload as stored; None: not known yet, the default choice)."""
    languages = dict.fromkeys(("da", *questionnaire.languages))
    definition = round_definition or {}
    return OfferedQuestionnaire(
        version_key=questionnaire.version_key,
        languages={language: printable(questionnaire, language) for language in languages},
        offered_languages=list(offered_for(questionnaire.version_key, definition.get("languages"),
                                           definition.get("translation_status"))),
    )


async def publish_offered(uow: UnitOfWork, settings: ResponsesSettings, round_id: str) -> QuestionnaireOffered:
    """Publish the round's questionnaires for print (in the unit of work: the outbox)."""
    config = await uow.session.get(RoundQuestionnaire, round_id)
    state = await uow.session.get(RoundState, round_id)
    municipalities = [EVERY_MUNICIPALITY, *sorted(config.supplements if config else {})]
    questionnaires = {}
    for kommunekode in municipalities:
        chosen = await questionnaire_for_round(uow.session, settings, round_id,
                                               "" if kommunekode == EVERY_MUNICIPALITY else kommunekode)
        questionnaires[kommunekode] = offered(chosen, state.definition if state is not None else None)
    event = QuestionnaireOffered(round_id=round_id, offered_at=datetime.now(UTC), questionnaires=questionnaires)
    uow.publish(event)
    return event
