"""The rounds' questionnaires for print (questionnaire.offered from responses): kept per round,
the latest ``offered_at``, and looked up when a paper questionnaire is built."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.dispatch.models import RoundQuestionnaireRow
from shared.events import QuestionnaireOffered

EVERY_MUNICIPALITY = "*"


async def store_offered(session: AsyncSession, event: QuestionnaireOffered) -> None:
    """Keep the round's questionnaires unless a later offer is kept already (a replay, or an
    older offer overtaken)."""
    values = {"offered_at": event.offered_at, "updated_at": sa.func.now(),
              "questionnaires": {k: v.model_dump(mode="json") for k, v in event.questionnaires.items()}}
    await session.execute(
        pg_insert(RoundQuestionnaireRow).values(round_id=event.round_id, **values)
        .on_conflict_do_update(index_elements=["round_id"], set_=values,
                               where=RoundQuestionnaireRow.offered_at < event.offered_at)
    )


async def offered_for(session: AsyncSession, round_ids: Iterable[str]) -> dict[str, dict]:
    """round id -> its questionnaires (kommunekode or "*" -> OfferedQuestionnaire as JSON)."""
    rows = await session.execute(sa.select(RoundQuestionnaireRow.round_id, RoundQuestionnaireRow.questionnaires)
                                 .where(RoundQuestionnaireRow.round_id.in_(list(round_ids))))
    return dict(rows.all())


async def offered_for_round(session: AsyncSession, round_id: str) -> dict | None:
    return (await offered_for(session, [round_id])).get(round_id)


def questionnaire_for(questionnaires: dict | None, kommunekode: str) -> dict | None:
    """The municipality's own questionnaire (a supplement), else the round's."""
    if not questionnaires:
        return None
    return questionnaires.get(kommunekode) or questionnaires.get(EVERY_MUNICIPALITY)
