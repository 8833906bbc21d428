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
    await _keep_receipt(
        uow, PurgeReceipt,
        round_id=event.round_id, service=event.service, removed=event.removed, verified=event.verified, purged_at=event.purged_at,
    )
    await service.record_purge_complete(uow, event.round_id)


async def on_citizen_erased(uow: UnitOfWork, envelope: Envelope, event: CitizenErased) -> None:
    await _keep_receipt(
        uow, PrivacyReceipt,
        request_id=event.request_id, service=event.service, removed=event.removed, verified=event.verified, erased_at=event.erased_at,
    )


async def _keep_receipt(uow: UnitOfWork, receipt: type[PurgeReceipt] | type[PrivacyReceipt], **values) -> None:
    """A service's receipt, its latest word kept: one row per (round or request, service)."""
    key = [column.name for column in receipt.__table__.primary_key]
    await uow.session.execute(
        pg_insert(receipt)
        .values(**values)
        .on_conflict_do_update(index_elements=key, set_={name: value for name, value in values.items() if name not in key})
    )


HANDLERS = {**privacy_handlers(RULES), RoundPurged: on_round_purged, CitizenErased: on_citizen_erased}
