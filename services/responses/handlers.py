"""Responses' event handlers: learn which links exist (and their answer ids), and each round's
definition (when its fieldwork ends); a round's definition also sends its questionnaire for print
(printed.py)."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert as pg_insert

import sqlalchemy as sa

from services.responses.interviews import on_phones_released
from services.responses.config import ResponsesSettings
from services.responses.models import TOMBSTONES, Respondent, RoundState
from services.responses.printed import publish_offered
from shared.bus import UnitOfWork
from shared.events import Envelope, InterviewPhonesReleased, LinkIssued, RoundDefined
from shared.privacy import TOMBSTONE_CITIZEN, TOMBSTONE_ROUND, pseudonym_digest


async def on_link_issued(uow: UnitOfWork, envelope: Envelope, event: LinkIssued) -> None:
    values = {
        "token_hash": event.token_hash, "round_id": event.round_id, "kommunekode": event.kommunekode,
        "pseudonym": event.pseudonym, "maalgruppe": event.maalgruppe, "stratum": event.stratum,
        "gender": event.bands.gender, "age_band": event.bands.age_band, "duration_band": event.bands.duration_band,
        "design_weight": event.design_weight, "arm": event.arm, "expires_at": event.expires_at,
        "answer_id": event.answer_id, "status": "open", "draft": {},
    }
    # No link of a purged round or an erased citizen comes back (shared.privacy: tombstones),
    # read in the insert's own SELECT: still one statement per link.
    buried = sa.exists().where(sa.or_(
        sa.and_(TOMBSTONES.c.kind == TOMBSTONE_ROUND, TOMBSTONES.c.ref == event.round_id),
        sa.and_(TOMBSTONES.c.kind == TOMBSTONE_CITIZEN, TOMBSTONES.c.ref == pseudonym_digest(event.pseudonym)),
    ))
    columns = Respondent.__table__.c
    row = sa.select(*(sa.literal(value, type_=columns[name].type).label(name) for name, value in values.items())).where(~buried)
    await uow.session.execute(pg_insert(Respondent).from_select(list(values), row).on_conflict_do_nothing())


async def on_round_defined(uow: UnitOfWork, envelope: Envelope, event: RoundDefined) -> None:
    """Keep the highest revision; a lower or equal one is a replay and changes nothing."""
    values = {"revision": event.revision, "phase": event.phase, "fieldwork_ends_at": event.fieldwork_ends_at,
              "definition": event.model_dump(mode="json"), "updated_at": sa.func.now()}
    await uow.session.execute(
        pg_insert(RoundState)
        .values(round_id=event.round_id, **values)
        .on_conflict_do_update(index_elements=["round_id"], set_=values,
                               where=RoundState.revision < event.revision)
    )


def make_handlers(settings: ResponsesSettings) -> dict:
    async def on_round_defined_offer(uow: UnitOfWork, envelope: Envelope, event: RoundDefined) -> None:
        await on_round_defined(uow, envelope, event)
        # Dispatch prints paper questionnaires from it, and learns the round's questionnaire no
        # other way; sent on every revision (a replay sends the same state again: harmless).
        await publish_offered(uow, settings, event.round_id)

    return {LinkIssued: on_link_issued, RoundDefined: on_round_defined_offer, InterviewPhonesReleased: on_phones_released}
