"""Ingest's event handlers: its own share of purges and erasures, and everyone's receipts."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert as pg_insert

from services.ingest.privacy import service
from services.ingest.privacy.models import PrivacyReceipt, PurgeReceipt
from services.ingest.privacy.rules import RULES
from shared.bus import UnitOfWork
from shared.events import CitizenErased, Envelope, RoundPurged
from shared.privacy import privacy_handlers


async def on_round_purged(uow: UnitOfWork, envelope: Envelope, event: RoundPurged) -> None:
    values = {"removed": event.removed, "verified": event.verified, "purged_at": event.purged_at}
    await uow.session.execute(
        pg_insert(PurgeReceipt)
        .values(round_id=event.round_id, service=event.service, **values)
        .on_conflict_do_update(index_elements=["round_id", "service"], set_=values)
    )
    await service.record_purge_complete(uow, event.round_id)


async def on_citizen_erased(uow: UnitOfWork, envelope: Envelope, event: CitizenErased) -> None:
    values = {"removed": event.removed, "verified": event.verified, "erased_at": event.erased_at}
    await uow.session.execute(
        pg_insert(PrivacyReceipt)
        .values(request_id=event.request_id, service=event.service, **values)
        .on_conflict_do_update(index_elements=["request_id", "service"], set_=values)
    )


HANDLERS = {**privacy_handlers(RULES), RoundPurged: on_round_purged, CitizenErased: on_citizen_erased}
