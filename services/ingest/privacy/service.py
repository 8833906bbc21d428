"""Service functions of the privacy coordination: thin routers and handlers call these."""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from services.ingest.config import IngestSettings
from services.ingest.domain.cpr import parse_cpr
from services.ingest.domain.pseudonym import pseudonym_for
from services.ingest.privacy.models import BlockedCitizen, PrivacyReceipt, PrivacyRequest, PurgeReceipt, RoundClosure
from services.ingest.privacy.rules import RULES
from services.ingest.privacy.schemas import PrivacyRequestStatus, Receipt, RetentionStatus
from services.ingest import rounds
from services.ingest.service import round_lock_key
from shared.bus import UnitOfWork
from shared.events import CitizenErasureRequested, RoundPurgeRequested

logger = logging.getLogger(__name__)

# Every service that holds data of a round or a citizen, and so owes a receipt.
SERVICES: tuple[str, ...] = ("ingest", "sampling", "dispatch", "responses", "analytics")


class RoundAlreadyClosed(Exception):
    pass


async def close_round(
    uow: UnitOfWork, settings: IngestSettings, round_id: str, *, closed_by: str, retention_days: int | None
) -> RetentionStatus:
    """Close the round and start its retention clock (``retention_days``, else the round's own);
    0 requests the purge at once. Commits; the round's retention status."""
    # Deliveries of the round hold this lock for their whole transaction: the close waits for
    # one in flight, and every later delivery sees the closure and is refused.
    await uow.session.execute(sa.select(sa.func.pg_advisory_xact_lock(round_lock_key(round_id))))
    now = datetime.now(UTC)
    if await uow.session.get(RoundClosure, round_id) is not None:
        raise RoundAlreadyClosed(round_id)
    # The round's phase becomes closed (ending fieldwork if it runs), published as round.defined.
    definition = await rounds.close(uow, round_id, actor=closed_by, now=now)
    days = definition.retention_days if retention_days is None else retention_days
    inserted = await uow.session.execute(
        pg_insert(RoundClosure)
        .values(round_id=round_id, closed_at=now, closed_by=closed_by, purge_after=now + timedelta(days=days))
        .on_conflict_do_nothing()
        .returning(RoundClosure.round_id)
    )
    if inserted.first() is None:
        raise RoundAlreadyClosed(round_id)
    await uow.commit()
    if days == 0:
        await request_purge(uow, round_id)
    status = await retention_status(uow, round_id)
    assert status is not None
    return status


async def record_purge_complete(uow: UnitOfWork, round_id: str) -> bool:
    """The round becomes purged once every service has purged it and verified (no commit: the
    receipt's handler holds the transaction)."""
    found = await retention_status(uow, round_id)
    if found is None or not found.complete:
        return False
    return await rounds.advance(uow, round_id, "purge", actor="ingest:retention")


async def request_purge(uow: UnitOfWork, round_id: str, *, now: datetime | None = None) -> bool:
    """Publish round.purge_requested for a closed round whose retention ran out (once)."""
    now = now or datetime.now(UTC)
    row = (
        await uow.session.execute(
            sa.update(RoundClosure)
            .where(RoundClosure.round_id == round_id, RoundClosure.purge_requested_at.is_(None), RoundClosure.purge_after <= now)
            .values(purge_requested_at=now)
            .returning(RoundClosure.closed_at)
        )
    ).first()
    if row is None:
        return False
    # Ingest's own part arrives through the same event, like everyone else's.
    uow.publish(RoundPurgeRequested(round_id=round_id, closed_at=row.closed_at, requested_at=now))
    await uow.commit()
    logger.info("retention purge requested", extra={"fields": {"round_id": round_id}})
    return True


async def due_rounds(uow: UnitOfWork, now: datetime) -> list[str]:
    return list(
        await uow.session.scalars(
            sa.select(RoundClosure.round_id).where(RoundClosure.purge_requested_at.is_(None), RoundClosure.purge_after <= now)
        )
    )


async def retention_status(uow: UnitOfWork, round_id: str) -> RetentionStatus | None:
    """A closed round's purge, service by service (None: the round is not closed)."""
    closure = await uow.session.get(RoundClosure, round_id)
    if closure is None:
        return None
    receipts = await uow.session.scalars(sa.select(PurgeReceipt).where(PurgeReceipt.round_id == round_id))
    return RetentionStatus(
        round_id=closure.round_id,
        closed_at=closure.closed_at,
        closed_by=closure.closed_by,
        purge_after=closure.purge_after,
        purge_requested_at=closure.purge_requested_at,
        **_receipts(receipts, at="purged_at"),
    )


def _receipts(rows, *, at: str) -> dict:
    """Every service's receipt; complete when each of ``SERVICES`` has one and verified it."""
    by_service = {r.service: r for r in rows}
    return {
        "receipts": [
            Receipt(service=s, removed=r.removed, verified=r.verified, at=getattr(r, at)) for s, r in sorted(by_service.items())
        ],
        "complete": all(s in by_service and by_service[s].verified for s in SERVICES),
        "waiting_for": [s for s in SERVICES if s not in by_service],
    }


def pseudonyms_for(settings: IngestSettings, cpr: str) -> list[str]:
    """The citizen's pseudonym under every pseudonym key still in use (active first)."""
    keys = [settings.pseudonym_key_bytes, *settings.retired_pseudonym_keyring.values()]
    return [pseudonym_for(cpr, key) for key in keys]


class InvalidCpr(ValueError):
    pass


async def take_privacy_request(
    uow: UnitOfWork, settings: IngestSettings, *, cpr: str, kind: str, requested_by: str, reference: str | None
) -> PrivacyRequestStatus:
    """Take a citizen's erasure or objection (an objection also blocks future extracts) and
    commit; its status."""
    try:
        number = parse_cpr(cpr).number
    except Exception as exc:  # the message never repeats the number
        raise InvalidCpr("cpr: not a CPR number (10 digits, DDMMYY-SSSS, with a valid date)") from exc
    pseudonyms = pseudonyms_for(settings, number)
    now = datetime.now(UTC)
    request = PrivacyRequest(id=uuid.uuid4(), kind=kind, requested_by=requested_by, requested_at=now, reference=reference)
    uow.session.add(request)
    await uow.session.flush()
    if kind == "objection":
        await uow.session.execute(
            pg_insert(BlockedCitizen)
            .values([{"pseudonym": p, "request_id": request.id} for p in pseudonyms])
            .on_conflict_do_nothing()
        )
    uow.publish(CitizenErasureRequested(request_id=request.id, kind=kind, pseudonyms=pseudonyms, requested_at=now))
    await uow.commit()
    status = await privacy_request_status(uow, request.id)
    assert status is not None
    return status


async def privacy_request_status(uow: UnitOfWork, request_id: uuid.UUID) -> PrivacyRequestStatus | None:
    """Where a citizen's request has been carried out (None: no such request)."""
    request = await uow.session.get(PrivacyRequest, request_id)
    if request is None:
        return None
    receipts = await uow.session.scalars(sa.select(PrivacyReceipt).where(PrivacyReceipt.request_id == request_id))
    return PrivacyRequestStatus(
        request_id=request.id,
        kind=request.kind,
        requested_at=request.requested_at,
        reference=request.reference,
        **_receipts(receipts, at="erased_at"),
    )


__all__ = ["RULES", "SERVICES"]
