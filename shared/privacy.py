"""Plumbing for retention and erasure: every service obeys the same two events the same way.

Ingest coordinates (it closes rounds, runs the retention clock and takes citizens' requests);
each service supplies what is its own: which rows hold identifiers and how to delete or
anonymise them, and a query that proves nothing is left. This module turns those into handlers
that do the work, check it, log it (counts only) and publish the service's receipt, all in the
handler's transaction, so a receipt is never sent for work that was rolled back.
"""

from __future__ import annotations

import hashlib
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


# --- tombstones: what was purged or erased stays gone -------------------------------------------
#
# Events are delivered at least once and in order only per key: a sample chunk, a contact release
# or a link may reach a service after the round's purge or the citizen's erasure (a replay, a
# consumer behind, a dead-letter re-driven). A service whose handlers would create rows from such
# an event keeps tombstones, written by the privacy handlers in the purge's or erasure's own
# transaction, and its handlers skip what they name. A purged round is kept by its id; an erased
# citizen by the SHA-256 of each pseudonym, never the pseudonym itself (recognisable only from the
# pseudonym, which the late event carries; the erasure check counts no tombstone).

TOMBSTONE_ROUND = "round"
TOMBSTONE_CITIZEN = "citizen"


def _tombstone_columns() -> list[sa.Column]:
    return [
        sa.Column("kind", sa.Text, primary_key=True),  # round | citizen
        sa.Column("ref", sa.Text, primary_key=True),  # the round id, or the pseudonym's SHA-256 (hex)
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


def tombstone_table(metadata: sa.MetaData) -> sa.Table:
    return sa.Table("privacy_tombstone", metadata, *_tombstone_columns())


def create_tombstones(schema: str) -> None:
    """For a service's Alembic migration."""
    from alembic import op

    op.create_table("privacy_tombstone", *_tombstone_columns(), schema=schema)


def pseudonym_digest(pseudonym: str) -> str:
    return hashlib.sha256(pseudonym.encode()).hexdigest()


async def round_purged(session, tombstones: sa.Table, round_id: str) -> bool:
    return bool(await session.scalar(sa.select(sa.exists().where(
        tombstones.c.kind == TOMBSTONE_ROUND, tombstones.c.ref == round_id))))


async def erased_among(session, tombstones: sa.Table, pseudonyms) -> set[str]:
    """The pseudonyms of erased citizens among ``pseudonyms``."""
    by_digest = {pseudonym_digest(p): p for p in pseudonyms}
    if not by_digest:
        return set()
    found = await session.scalars(sa.select(tombstones.c.ref).where(
        tombstones.c.kind == TOMBSTONE_CITIZEN, tombstones.c.ref.in_(list(by_digest))))
    return {by_digest[digest] for digest in found}


async def _bury(session, tombstones: sa.Table, kind: str, refs) -> None:
    refs = list(refs)
    if refs:
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        await session.execute(pg_insert(tombstones).values([{"kind": kind, "ref": ref} for ref in refs]).on_conflict_do_nothing())


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
    tombstones: sa.Table | None = None  # the service's privacy_tombstone table, where late events could recreate rows


def privacy_handlers(rules: PrivacyRules) -> dict[type[EventPayload], Handler]:
    async def on_purge_requested(uow: UnitOfWork, envelope: Envelope, event: RoundPurgeRequested) -> None:
        removed = await rules.purge_round(uow, event.round_id)
        left = await rules.identifiers_left_in_round(uow, event.round_id)
        if left:
            raise IdentifiersRemain(f"{rules.service}: {left} identifier rows of round {event.round_id} left after purge")
        now = datetime.now(UTC)
        if rules.tombstones is not None:
            await _bury(uow.session, rules.tombstones, TOMBSTONE_ROUND, [event.round_id])
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
        if rules.tombstones is not None:
            await _bury(uow.session, rules.tombstones, TOMBSTONE_CITIZEN, map(pseudonym_digest, event.pseudonyms))
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
