"""Analytics' event handlers: keyed facts plus tallies that change only with a new fact.

Every count is incremented in the same transaction that inserts the (keyed) fact it counts, and
only when that insert created the row: a redelivered or re-published event finds the fact and
changes nothing, so a replay from the topics rebuilds exactly the same tables.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from services.analytics.domain.answers import answer_code
from services.analytics.domain.publication import NO_ARM
from services.analytics.models import AnswerTally, Invited, RateTally, ResponseFact, RoundState, StratumFrame
from shared.bus import UnitOfWork, batch_handler
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


async def _count_rates(uow: UnitOfWork, *, invited: Counter | None = None, answered: Counter | None = None) -> None:
    """Add invited/answered counts keyed (round, stratum, arm, kommunekode, maalgruppe) in one statement."""
    invited, answered = invited or Counter(), answered or Counter()
    keys = sorted(set(invited) | set(answered))
    if not keys:
        return
    statement = pg_insert(RateTally).values(
        [dict(zip(_RATE_COLUMNS, key, strict=True)) | {"invited": invited[key], "answered": answered[key]} for key in keys]
    )
    await uow.session.execute(
        statement.on_conflict_do_update(
            index_elements=[RateTally.round_id, RateTally.stratum, RateTally.arm],
            set_={
                "invited": RateTally.invited + statement.excluded.invited,
                "answered": RateTally.answered + statement.excluded.answered,
            },
        )
    )


def _rate_key(event: InvitationSent | ResponseSubmitted) -> tuple:
    return (event.round_id, event.stratum, event.arm or NO_ARM, event.kommunekode, event.maalgruppe)


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


@batch_handler
async def on_invitations_sent(uow: UnitOfWork, items: list[tuple[Envelope, InvitationSent]]) -> None:
    # Only the first message makes a citizen "invited"; reminders do not count again.
    events = {(e.round_id, e.pseudonym): e for _, e in reversed(items)}  # first message per citizen wins
    inserted = await uow.session.execute(
        pg_insert(Invited)
        .values(
            [
                {
                    "round_id": e.round_id, "pseudonym": e.pseudonym, "kommunekode": e.kommunekode,
                    "stratum": e.stratum, "arm": e.arm, "first_sent_at": e.sent_at,
                }
                for e in events.values()
            ]
        )
        .on_conflict_do_nothing()
        .returning(Invited.round_id, Invited.pseudonym)
    )
    invited = Counter(_rate_key(events[tuple(key)]) for key in inserted.all())
    await _count_rates(uow, invited=invited)
    for round_id in sorted({key[0] for key in invited}):
        await _touch_round(uow, round_id)


@batch_handler
async def on_responses_submitted(uow: UnitOfWork, items: list[tuple[Envelope, ResponseSubmitted]]) -> None:
    # Keyed by round and pseudonym: one answer per citizen and round, however often it arrives.
    events = {(e.round_id, e.pseudonym): e for _, e in reversed(items)}
    inserted = await uow.session.execute(
        pg_insert(ResponseFact)
        .values(
            [
                {
                    "round_id": e.round_id, "pseudonym": e.pseudonym, "kommunekode": e.kommunekode,
                    "stratum": e.stratum, "maalgruppe": e.maalgruppe, "gender": e.bands.gender,
                    "age_band": e.bands.age_band, "duration_band": e.bands.duration_band,
                    "design_weight": e.design_weight, "arm": e.arm, "mode": e.mode,
                    "questionnaire_id": e.questionnaire_id, "questionnaire_version": e.questionnaire_version,
                    "answers": e.answers, "submitted_at": e.submitted_at,
                }
                for e in events.values()
            ]
        )
        .on_conflict_do_nothing()
        .returning(ResponseFact.round_id, ResponseFact.pseudonym)
    )
    new_events = [events[tuple(key)] for key in inserted.all()]
    if not new_events:
        return
    # Tallies only for facts this batch created, summed first so each key appears once.
    tallies: Counter = Counter()
    for e in new_events:
        for question, value in e.answers.items():
            if (code := answer_code(value)) is not None:
                tallies[
                    (e.round_id, e.stratum, e.bands.gender, e.bands.age_band, e.bands.duration_band, question, code, e.kommunekode, e.maalgruppe)
                ] += 1
    rows = [dict(zip(_TALLY_COLUMNS, key, strict=True)) | {"n": n} for key, n in sorted(tallies.items())]
    # PostgreSQL takes at most 32,767 parameters per statement: 1,000 rows of 10 columns is safe.
    for start in range(0, len(rows), 1000):
        statement = pg_insert(AnswerTally).values(rows[start : start + 1000])
        await uow.session.execute(
            statement.on_conflict_do_update(
                index_elements=[c.name for c in AnswerTally.__table__.primary_key.columns],
                set_={"n": AnswerTally.n + statement.excluded.n},
            )
        )
    await _count_rates(uow, answered=Counter(_rate_key(e) for e in new_events))
    for round_id in sorted({e.round_id for e in new_events}):
        of_round = [e for e in new_events if e.round_id == round_id]
        await _touch_round(uow, round_id, of_round[0].questionnaire_id, min(e.submitted_at for e in of_round))


_RATE_COLUMNS = ("round_id", "stratum", "arm", "kommunekode", "maalgruppe")
_TALLY_COLUMNS = ("round_id", "stratum", "gender", "age_band", "duration_band", "question", "code", "kommunekode", "maalgruppe")


HANDLERS = {
    "sample.drawn": on_sample_drawn,
    "invitation.sent": on_invitations_sent,
    "response.submitted": on_responses_submitted,
}
