"""Analytics' event handlers: keyed facts plus tallies that change only with a new fact.

Every count is incremented in the same transaction that inserts the (keyed) fact it counts, and
only when that insert created the row: a redelivered or re-published event finds the fact and
changes nothing, so a replay from the topics rebuilds exactly the same tables.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from services.analytics.domain.answers import answer_code
from services.analytics.domain.publication import NO_ARM
from services.analytics.models import AnswerTally, Invited, RateTally, ResponseFact, RoundState, StratumFrame
from shared.bus import UnitOfWork
from shared.events import Envelope, InvitationSent, ResponseSubmitted, SampleDrawn


async def _touch_round(
    uow: UnitOfWork, round_id: str, questionnaire_id: str | None = None, submitted_at: datetime | None = None
) -> None:
    """Bump the round's version (the read cache key) and remember its questionnaire."""
    statement = pg_insert(RoundState).values(
        round_id=round_id, questionnaire_id=questionnaire_id, first_submitted_at=submitted_at, version=1
    )
    await uow.session.execute(
        statement.on_conflict_do_update(
            index_elements=[RoundState.round_id],
            set_={
                "version": RoundState.version + 1,
                "questionnaire_id": sa.func.coalesce(RoundState.questionnaire_id, statement.excluded.questionnaire_id),
                "first_submitted_at": sa.func.least(RoundState.first_submitted_at, statement.excluded.first_submitted_at),
            },
        )
    )


async def _count_rate(uow: UnitOfWork, round_id: str, stratum: str, arm: str | None, kommunekode: str, maalgruppe: str, *, invited: int, answered: int) -> None:
    statement = pg_insert(RateTally).values(
        round_id=round_id, stratum=stratum, arm=arm or NO_ARM, kommunekode=kommunekode, maalgruppe=maalgruppe,
        invited=invited, answered=answered,
    )
    await uow.session.execute(
        statement.on_conflict_do_update(
            index_elements=[RateTally.round_id, RateTally.stratum, RateTally.arm],
            set_={"invited": RateTally.invited + invited, "answered": RateTally.answered + answered},
        )
    )


async def on_sample_drawn(uow: UnitOfWork, envelope: Envelope, event: SampleDrawn) -> None:
    for summary in event.strata:
        statement = pg_insert(StratumFrame).values(
            round_id=event.round_id,
            stratum=summary.stratum,
            kommunekode=event.kommunekode,
            maalgruppe=summary.maalgruppe,
            population=summary.population,
            sample=summary.sample,
        )
        await uow.session.execute(
            statement.on_conflict_do_update(
                index_elements=[StratumFrame.round_id, StratumFrame.stratum],
                set_={"population": statement.excluded.population, "sample": statement.excluded.sample},
            )
        )
    if event.strata:
        await _touch_round(uow, event.round_id)


async def on_invitation_sent(uow: UnitOfWork, envelope: Envelope, event: InvitationSent) -> None:
    # Only the first message makes a citizen "invited"; reminders do not count again.
    inserted = await uow.session.execute(
        pg_insert(Invited)
        .values(
            round_id=event.round_id,
            pseudonym=event.pseudonym,
            kommunekode=event.kommunekode,
            stratum=event.stratum,
            arm=event.arm,
            first_sent_at=event.sent_at,
        )
        .on_conflict_do_nothing()
        .returning(Invited.pseudonym)
    )
    if inserted.first() is None:
        return
    await _count_rate(uow, event.round_id, event.stratum, event.arm, event.kommunekode, event.maalgruppe, invited=1, answered=0)
    await _touch_round(uow, event.round_id)


async def on_response_submitted(uow: UnitOfWork, envelope: Envelope, event: ResponseSubmitted) -> None:
    # Keyed by round and pseudonym: one answer per citizen and round, however often it arrives.
    inserted = await uow.session.execute(
        pg_insert(ResponseFact)
        .values(
            round_id=event.round_id,
            pseudonym=event.pseudonym,
            kommunekode=event.kommunekode,
            stratum=event.stratum,
            maalgruppe=event.maalgruppe,
            gender=event.bands.gender,
            age_band=event.bands.age_band,
            duration_band=event.bands.duration_band,
            design_weight=event.design_weight,
            arm=event.arm,
            mode=event.mode,
            questionnaire_id=event.questionnaire_id,
            questionnaire_version=event.questionnaire_version,
            answers=event.answers,
            submitted_at=event.submitted_at,
        )
        .on_conflict_do_nothing()
        .returning(ResponseFact.pseudonym)
    )
    if inserted.first() is None:
        return
    tally_rows = [
        {
            "round_id": event.round_id,
            "stratum": event.stratum,
            "gender": event.bands.gender,
            "age_band": event.bands.age_band,
            "duration_band": event.bands.duration_band,
            "question": question,
            "code": code,
            "kommunekode": event.kommunekode,
            "maalgruppe": event.maalgruppe,
            "n": 1,
        }
        for question, value in sorted(event.answers.items())
        if (code := answer_code(value)) is not None
    ]
    if tally_rows:
        statement = pg_insert(AnswerTally).values(tally_rows)
        await uow.session.execute(
            statement.on_conflict_do_update(
                index_elements=[c.name for c in AnswerTally.__table__.primary_key.columns],
                set_={"n": AnswerTally.n + 1},
            )
        )
    await _count_rate(uow, event.round_id, event.stratum, event.arm, event.kommunekode, event.maalgruppe, invited=0, answered=1)
    await _touch_round(uow, event.round_id, event.questionnaire_id, event.submitted_at)


HANDLERS = {
    "sample.drawn": on_sample_drawn,
    "invitation.sent": on_invitation_sent,
    "response.submitted": on_response_submitted,
}
