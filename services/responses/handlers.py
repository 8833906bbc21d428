"""Responses' event handlers: learn which links exist."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert as pg_insert

from services.responses.models import Respondent
from shared.bus import UnitOfWork
from shared.events import Envelope, LinkIssued


async def on_link_issued(uow: UnitOfWork, envelope: Envelope, event: LinkIssued) -> None:
    await uow.session.execute(
        pg_insert(Respondent)
        .values(
            token_hash=event.token_hash,
            round_id=event.round_id,
            kommunekode=event.kommunekode,
            pseudonym=event.pseudonym,
            maalgruppe=event.maalgruppe,
            stratum=event.stratum,
            gender=event.bands.gender,
            age_band=event.bands.age_band,
            duration_band=event.bands.duration_band,
            design_weight=event.design_weight,
            arm=event.arm,
            expires_at=event.expires_at,
            status="open",
            draft={},
        )
        .on_conflict_do_nothing()
    )


HANDLERS = {"link.issued": on_link_issued}
