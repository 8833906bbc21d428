"""Analytics' event handlers: keyed facts plus tallies that change only with a new fact.

Every count is incremented in the same transaction that inserts the (keyed) fact it counts, and
only when that insert created the row: a redelivered or re-published event finds the fact and
changes nothing, so a replay from the topics rebuilds exactly the same tables.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from services.analytics.domain.answers import answer_code
from services.analytics.domain.publication import NO_ARM
from services.analytics.models import AnswerTally, FollowupInvited, Invited, PopulationCell, RateTally, ResponseFact, RoundState, SampleChunk, StratumFrame
from shared.bus import UnitOfWork, batch_handler
from shared.events import Envelope, FrameMargins, InvitationSent, ResponseSubmitted, SampleDrawn, SampleDrawnV1


# Insert the round with its first version, or update it (which locks its row until commit).
_UPSERT_ROUND = (
    f"INSERT INTO {RoundState.__table__.fullname} AS r (round_id, questionnaire_id, first_submitted_at, version) "
    "VALUES (:round_id, :questionnaire_id, :submitted_at, {first_version}) ON CONFLICT (round_id) DO UPDATE SET "
    "questionnaire_id = coalesce(r.questionnaire_id, excluded.questionnaire_id)"
)
# PostgreSQL delivers a NOTIFY when (and only if) its transaction commits: the publication cache
# listens (service.RoundChanges) and rebuilds a changed round at once instead of at its next poll.
ROUND_CHANGED_CHANNEL = "analytics_round_changed"
_TOUCH_ROUND = sa.text(
    "WITH touched AS ("
    + _UPSERT_ROUND.format(first_version=1)
    + ", version = r.version + 1, first_submitted_at = least(r.first_submitted_at, excluded.first_submitted_at) "
    f"RETURNING round_id) SELECT pg_notify('{ROUND_CHANGED_CHANNEL}', round_id) FROM touched"
).bindparams(sa.bindparam("submitted_at", type_=sa.DateTime(timezone=True)))
# Takes the round's row lock before its facts are written (inserting the round if new) and
# returns its version, without bumping it: see on_responses_submitted.
_LOCK_ROUND = sa.text(_UPSERT_ROUND.format(first_version=0) + " RETURNING version").bindparams(
    sa.bindparam("submitted_at", type_=sa.DateTime(timezone=True))
)


async def touch_round(
    uow: UnitOfWork, round_id: str, questionnaire_id: str | None = None, submitted_at: datetime | None = None
) -> None:
    """Bump the round's version (the read cache key), remember its questionnaire, and notify
    the round's change on commit. A constant statement: building it with the ORM's insert()
    compiled it anew in every batch, a fifth of the consumer's time at 200 answers/s."""
    await uow.session.execute(
        _TOUCH_ROUND, {"round_id": round_id, "questionnaire_id": questionnaire_id, "submitted_at": submitted_at}
    )


async def _count_rates(uow: UnitOfWork, *, invited: Counter | None = None, answered: Counter | None = None) -> None:
    """Add invited/answered counts keyed (round, stratum, arm, mode, language, kommunekode, maalgruppe) in one statement."""
    invited, answered = invited or Counter(), answered or Counter()
    keys = sorted(set(invited) | set(answered))
    if not keys:
        return
    columns = _columns(keys, _RATE_COLUMNS)
    await uow.session.execute(
        _RATES_UPSERT, columns | {"invited": [invited[key] for key in keys], "answered": [answered[key] for key in keys]}
    )


def _columns(rows: list[tuple], names: tuple[str, ...]) -> dict[str, list]:
    """Rows as one list per column: the parameters of an ``unnest`` statement."""
    return {name: list(values) for name, values in zip(names, zip(*rows), strict=True)}


def _unnest_insert(table: sa.Table, columns: dict[str, str], tail: str) -> sa.TextClause:
    """``INSERT .. SELECT FROM unnest(one array per column) ..``: one bind parameter per column
    whatever the number of rows, so the statement text is constant (no per-batch SQL
    compilation, which dominated the consumer's time with multi-row VALUES) and a batch of any
    size is a single round trip."""
    names = ", ".join(columns)
    # jsonb travels as JSON text and is cast per element (a jsonb[] parameter would need a codec).
    arrays = ", ".join(f"CAST(:{name} AS {'text' if sql_type == 'jsonb' else sql_type}[])" for name, sql_type in columns.items())
    selected = ", ".join(f"{name}::jsonb" if sql_type == "jsonb" else name for name, sql_type in columns.items())
    return sa.text(f"INSERT INTO {table.fullname} ({names}) SELECT {selected} FROM unnest({arrays}) AS u({names}) {tail}")


def _rate_key(event: InvitationSent | ResponseSubmitted) -> tuple:
    """The rate tally an event counts in: an invitation on the rows without mode and language, an
    answer on the rows of its mode and language (models.RateTally)."""
    how = (event.mode, event.language) if isinstance(event, ResponseSubmitted) else ("", "")
    return (event.round_id, event.stratum, event.arm or NO_ARM, *how, event.kommunekode, event.maalgruppe)


async def on_sample_drawn(uow: UnitOfWork, envelope: Envelope, event: SampleDrawn | SampleDrawnV1) -> None:
    # Either version (v1 chunks may still be on the topic): the strata and the persons' target
    # group, bands and design weight are read, which both carry alike (never a contact).
    if event.persons:
        cells = Counter((p.maalgruppe, p.bands.gender, p.bands.age_band, p.bands.duration_band, p.design_weight) for p in event.persons)
        await uow.session.execute(
            pg_insert(SampleChunk)
            .values(round_id=event.round_id, kommunekode=event.kommunekode, draw_id=str(event.draw_id), chunk_no=event.chunk_no,
                    cells=[[*key, n] for key, n in sorted(cells.items())])
            .on_conflict_do_nothing()
        )
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
        await touch_round(uow, event.round_id)


async def on_frame_margins(uow: UnitOfWork, envelope: Envelope, event: FrameMargins) -> None:
    """Keep the municipality's population cells. Each cell is keyed (round, municipality,
    target group, bands) and set, never added to, so a redelivered chunk changes nothing; a
    chunk of another draw than the one held replaces the municipality's cells (a round has one
    draw, so only a re-drawn round after a purge meets this)."""
    session = uow.session
    draw_id = str(event.draw_id)
    await session.execute(
        sa.delete(PopulationCell).where(
            PopulationCell.round_id == event.round_id,
            PopulationCell.kommunekode == event.kommunekode,
            PopulationCell.draw_id != draw_id,
        )
    )
    if event.cells:
        statement = pg_insert(PopulationCell).values(
            [
                {
                    "round_id": event.round_id, "kommunekode": event.kommunekode, "maalgruppe": c.maalgruppe,
                    "gender": c.bands.gender, "age_band": c.bands.age_band, "duration_band": c.bands.duration_band,
                    "draw_id": draw_id, "population": c.population,
                }
                for c in event.cells
            ]
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=[
                    PopulationCell.round_id, PopulationCell.kommunekode, PopulationCell.maalgruppe,
                    PopulationCell.gender, PopulationCell.age_band, PopulationCell.duration_band,
                ],
                set_={"population": statement.excluded.population, "draw_id": statement.excluded.draw_id},
            )
        )
    if event.final:
        await touch_round(uow, event.round_id)


@batch_handler
async def on_invitations_sent(uow: UnitOfWork, items: list[tuple[Envelope, InvitationSent]]) -> None:
    # Only the first message makes a citizen "invited"; reminders do not count again.
    events = {(e.round_id, e.pseudonym): e for _, e in reversed(items)}  # first message per citizen wins
    # The adaptive follow-up arm comes on a later message than the first: the first that carries it.
    followups = {(e.round_id, e.pseudonym): e for _, e in reversed(items) if e.followup_arm}
    for round_id in sorted({round_id for round_id, _ in followups}):
        # The round's row lock before the follow-up rows, as on_responses_submitted takes it before
        # its facts: whichever of an answer and an arm commits second sees the other.
        await uow.session.execute(_LOCK_ROUND, {"round_id": round_id, "questionnaire_id": None, "submitted_at": None})
    rows = [(e.round_id, e.pseudonym, e.kommunekode, e.stratum, e.arm, e.sent_at) for e in events.values()]
    inserted = await uow.session.execute(_INVITED_INSERT, _columns(rows, tuple(_INVITED_TYPES)))
    invited = Counter(_rate_key(events[tuple(key)]) for key in inserted.all())
    await _count_rates(uow, invited=invited)
    assigned: set[str] = set()
    if followups:
        rows = [(e.round_id, e.pseudonym, e.kommunekode, e.stratum, e.maalgruppe, e.followup_arm, e.sent_at)
                for e in followups.values()]
        assigned = {round_id for round_id, in (await uow.session.execute(
            _FOLLOWUP_INSERT, _columns(rows, tuple(_FOLLOWUP_TYPES)))).all()}
    for round_id in sorted({key[0] for key in invited} | assigned):
        await touch_round(uow, round_id)


@batch_handler
async def on_responses_submitted(uow: UnitOfWork, items: list[tuple[Envelope, ResponseSubmitted]]) -> None:
    # Keyed by round and pseudonym: one answer per citizen and round, however often it arrives.
    events = {(e.round_id, e.pseudonym): e for _, e in reversed(items)}
    # Each round's row is locked (in one order: concurrent batches cannot deadlock) before its
    # facts are written, and its version bumped after: writers of a round take turns, so the
    # version a fact is tagged with (the one this transaction commits the round at, or below it
    # if the transaction bumps the round again later) grows in commit order. Facts tagged up to
    # a version are then exactly the facts counted in the tallies at that version, which lets
    # a publication builder read only what was counted since its last build (builder.py).
    tag: dict[str, int] = {}
    for round_id in sorted({e.round_id for e in events.values()}):
        of_round = [e for e in events.values() if e.round_id == round_id]
        locked = await uow.session.execute(
            _LOCK_ROUND,
            {"round_id": round_id, "questionnaire_id": of_round[0].questionnaire_id, "submitted_at": min(e.submitted_at for e in of_round)},
        )
        tag[round_id] = locked.scalar_one() + 1
    rows = [
        (
            e.round_id, e.pseudonym, e.kommunekode, e.stratum, e.maalgruppe, e.bands.gender, e.bands.age_band,
            e.bands.duration_band, e.design_weight, e.arm, e.mode, e.language, e.questionnaire_id, e.questionnaire_version,
            json.dumps(e.answers), e.submitted_at, tag[e.round_id],
        )
        for e in events.values()
    ]
    inserted = await uow.session.execute(_FACT_INSERT, _columns(rows, tuple(_FACT_TYPES)))
    new_events = [events[tuple(key)] for key in inserted.all()]
    if not new_events:
        return  # all seen before: nothing counted, the version stays
    # Tallies only for facts this batch created, summed first so each key appears once.
    tallies: Counter = Counter()
    for e in new_events:
        for question, value in e.answers.items():
            if (code := answer_code(value)) is not None:
                tallies[
                    (e.round_id, e.stratum, e.bands.gender, e.bands.age_band, e.bands.duration_band, question, code, e.kommunekode, e.maalgruppe)
                ] += 1
    keys = sorted(tallies)  # one order for every writer: concurrent batches cannot deadlock
    await uow.session.execute(_TALLY_UPSERT, _columns(keys, _TALLY_COLUMNS) | {"n": [tallies[key] for key in keys]})
    await _count_rates(uow, answered=Counter(_rate_key(e) for e in new_events))
    await uow.session.execute(_FOLLOWUP_ANSWERED, {"round_id": [e.round_id for e in new_events],
                                                    "pseudonym": [e.pseudonym for e in new_events]})
    for round_id in sorted({e.round_id for e in new_events}):
        of_round = [e for e in new_events if e.round_id == round_id]
        await touch_round(uow, round_id, of_round[0].questionnaire_id, min(e.submitted_at for e in of_round))


_RATE_COLUMNS = ("round_id", "stratum", "arm", "mode", "language", "kommunekode", "maalgruppe")
_TALLY_COLUMNS = ("round_id", "stratum", "gender", "age_band", "duration_band", "question", "code", "kommunekode", "maalgruppe")
_INVITED_TYPES = {
    "round_id": "text", "pseudonym": "text", "kommunekode": "text", "stratum": "text", "arm": "text",
    "first_sent_at": "timestamptz",
}
_FACT_TYPES = {
    "round_id": "text", "pseudonym": "text", "kommunekode": "text", "stratum": "text", "maalgruppe": "text",
    "gender": "text", "age_band": "text", "duration_band": "text", "design_weight": "float8", "arm": "text",
    "mode": "text", "language": "text", "questionnaire_id": "text", "questionnaire_version": "int", "answers": "jsonb",
    "submitted_at": "timestamptz", "version": "bigint",
}
_FOLLOWUP_TYPES = {
    "round_id": "text", "pseudonym": "text", "kommunekode": "text", "stratum": "text", "maalgruppe": "text",
    "followup_arm": "text", "first_sent_at": "timestamptz",
}
# A citizen who answered before the arm's first message reached analytics is answered already.
_FOLLOWUP_INSERT = sa.text(
    f"INSERT INTO {FollowupInvited.__table__.fullname} ({', '.join(_FOLLOWUP_TYPES)}, answered) "
    f"SELECT {', '.join('u.' + c for c in _FOLLOWUP_TYPES)}, EXISTS (SELECT 1 FROM {ResponseFact.__table__.fullname} AS r "
    "WHERE r.round_id = u.round_id AND r.pseudonym = u.pseudonym) "
    f"FROM unnest({', '.join(f'CAST(:{c} AS {t}[])' for c, t in _FOLLOWUP_TYPES.items())}) AS u({', '.join(_FOLLOWUP_TYPES)}) "
    "ON CONFLICT DO NOTHING RETURNING round_id"
)
_FOLLOWUP_ANSWERED = sa.text(
    f"UPDATE {FollowupInvited.__table__.fullname} AS f SET answered = true "
    "FROM unnest(CAST(:round_id AS text[]), CAST(:pseudonym AS text[])) AS a(round_id, pseudonym) "
    "WHERE f.round_id = a.round_id AND f.pseudonym = a.pseudonym AND NOT f.answered"
)
_INVITED_INSERT = _unnest_insert(Invited.__table__, _INVITED_TYPES, "ON CONFLICT DO NOTHING RETURNING round_id, pseudonym")
_FACT_INSERT = _unnest_insert(ResponseFact.__table__, _FACT_TYPES, "ON CONFLICT DO NOTHING RETURNING round_id, pseudonym")
_TALLY_UPSERT = _unnest_insert(
    AnswerTally.__table__,
    {c: "text" for c in _TALLY_COLUMNS} | {"n": "int"},
    "ON CONFLICT (round_id, stratum, gender, age_band, duration_band, question, code) "
    "DO UPDATE SET n = answer_tally.n + excluded.n",
)
_RATES_UPSERT = _unnest_insert(
    RateTally.__table__,
    {c: "text" for c in _RATE_COLUMNS} | {"invited": "int", "answered": "int"},
    "ON CONFLICT (round_id, stratum, arm, mode, language) DO UPDATE SET "
    "invited = rate_tally.invited + excluded.invited, answered = rate_tally.answered + excluded.answered",
)


HANDLERS = {
    SampleDrawn: on_sample_drawn,  # v1 and v2
    FrameMargins: on_frame_margins,
    InvitationSent: on_invitations_sent,
    ResponseSubmitted: on_responses_submitted,
}
