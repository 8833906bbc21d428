"""Plumbing for retention and erasure: every service obeys the same two events the same way.

Ingest coordinates (it closes rounds, runs the retention clock and takes citizens' requests);
each service supplies what is its own: which rows hold identifiers and how to delete or
anonymise them, and a query that proves nothing is left. This module turns those into handlers
that do the work, check it, log it (counts only) and publish the service's receipt, all in the
handler's transaction, so a receipt is never sent for work that was rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from shared.audit import record
from shared.bus import UnitOfWork
from shared.bus.consumer import Handler
from shared.events import CitizenErased, CitizenErasureRequested, Envelope, EventPayload, RoundPurged, RoundPurgeRequested

logger = logging.getLogger(__name__)

# (uow, round_id) -> rows removed per table; (uow, round_id) -> identifiers still left (0 = verified)
RoundPurge = Callable[[UnitOfWork, str], Awaitable[dict[str, int]]]
RoundCheck = Callable[[UnitOfWork, str], Awaitable[int]]
# (uow, pseudonyms) -> rows removed per table; (uow, pseudonyms) -> rows still left
CitizenErase = Callable[[UnitOfWork, Sequence[str]], Awaitable[dict[str, int]]]
CitizenCheck = Callable[[UnitOfWork, Sequence[str]], Awaitable[int]]


def rows_with_pseudonyms(*models) -> CitizenCheck:
    """The usual ``rows_left_for_citizens``: rows of these models (each with a ``pseudonym``
    column) that still hold one of the pseudonyms."""

    async def rows_left(uow: UnitOfWork, pseudonyms: Sequence[str]) -> int:
        left = 0
        for model in models:
            left += await uow.session.scalar(
                sa.select(sa.func.count()).select_from(model).where(model.pseudonym.in_(pseudonyms))
            )
        return left

    return rows_left


class IdentifiersRemain(RuntimeError):
    """The check after a purge found identifiers: roll back and retry (then dead-letter, loudly)."""


@dataclass(frozen=True)
class PrivacyRules:
    service: str
    purge_round: RoundPurge
    identifiers_left_in_round: RoundCheck
    erase_citizens: CitizenErase
    rows_left_for_citizens: CitizenCheck
    audit_table: object | None = None  # the service's audit_log table


def privacy_handlers(rules: PrivacyRules) -> dict[type[EventPayload], Handler]:
    async def on_purge_requested(uow: UnitOfWork, envelope: Envelope, event: RoundPurgeRequested) -> None:
        removed = await rules.purge_round(uow, event.round_id)
        left = await rules.identifiers_left_in_round(uow, event.round_id)
        if left:
            raise IdentifiersRemain(f"{rules.service}: {left} identifier rows of round {event.round_id} left after purge")
        now = datetime.now(UTC)
        if rules.audit_table is not None:
            await record(
                uow.session, rules.audit_table, actor="retention", action="purge round", kind="retention",
                resource={"round_id": event.round_id, "removed": removed},
            )
        uow.publish(RoundPurged(round_id=event.round_id, service=rules.service, removed=removed, verified=True, purged_at=now))
        logger.info(
            "retention purge done",
            extra={"fields": {"round_id": event.round_id, "removed": removed, "verified": True}},
        )

    async def on_erasure_requested(uow: UnitOfWork, envelope: Envelope, event: CitizenErasureRequested) -> None:
        removed = await rules.erase_citizens(uow, event.pseudonyms)
        left = await rules.rows_left_for_citizens(uow, event.pseudonyms)
        if left:
            raise IdentifiersRemain(f"{rules.service}: {left} rows of an erased citizen left")
        if rules.audit_table is not None:
            await record(
                uow.session, rules.audit_table, actor="erasure", action=f"{event.kind} of a citizen", kind="erasure",
                resource={"request_id": str(event.request_id), "removed": removed},
            )
        uow.publish(
            CitizenErased(
                request_id=event.request_id, service=rules.service, removed=removed, verified=True, erased_at=datetime.now(UTC)
            )
        )
        logger.info("erasure done", extra={"fields": {"request_id": str(event.request_id), "removed": removed}})

    return {RoundPurgeRequested: on_purge_requested, CitizenErasureRequested: on_erasure_requested}
