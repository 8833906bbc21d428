"""Transactional outbox: events are rows written in the same transaction as the state change,
then published by a relay. A crash between commit and publish only delays an event; a crash
between publish and delete publishes it again, which idempotent consumers absorb.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import sqlalchemy as sa
from aiokafka import AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.bus.kafka import topic_name
from shared.bus.tables import BusTables
from shared.db import advisory_key
from shared.events import Envelope, EventPayload
from shared.observability import EVENTS_PRODUCED, OUTBOX_BACKLOG, correlation_id_var

logger = logging.getLogger(__name__)


def wrap_for_outbox(payload: EventPayload, *, source: str, correlation_id: str | None = None) -> Envelope:
    """The envelope an outbox row carries: the request's (or handler's) correlation id, else the
    event's key. For code that writes its outbox row in its own statement (e.g. a hot path in
    one SQL round trip), so its rows are the same as the unit of work's."""
    return Envelope.wrap(payload, source=source, correlation_id=correlation_id or correlation_id_var.get() or str(payload.key()))


class UnitOfWork:
    """One database transaction plus the events it publishes.

    Handlers and service functions change state through ``uow.session`` and announce facts with
    ``uow.publish(...)``; nothing is visible to anyone until :meth:`commit`. Leaving the block
    without committing rolls everything back, events included.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        tables: BusTables,
        *,
        source: str,
        on_commit: Callable[[], None] | None = None,
    ) -> None:
        self._sessionmaker = sessionmaker
        self._tables = tables
        self._source = source
        self._on_commit = on_commit
        self._pending: list[tuple[EventPayload, Envelope]] = []
        self._written_in_sql = False
        self.session: AsyncSession

    async def __aenter__(self) -> UnitOfWork:
        self.session = self._sessionmaker()
        self._pending = []
        self._written_in_sql = False
        return self

    async def __aexit__(self, *exc_info) -> None:
        try:
            if self.session.in_transaction():
                await self.session.rollback()
        finally:
            self._pending = []
            self._written_in_sql = False
            await self.session.close()

    def publish(self, payload: EventPayload, *, correlation_id: str | None = None) -> Envelope:
        envelope = wrap_for_outbox(payload, source=self._source, correlation_id=correlation_id)
        self._pending.append((payload, envelope))
        return envelope

    def events_written(self) -> None:
        """Say that this transaction wrote events in SQL (a bulk outbox filled by COPY or INSERT
        ... SELECT rather than ``publish``): the commit then wakes the relays as it does for
        published events, so they go out without waiting for the relay's next poll."""
        self._written_in_sql = True

    async def flush_events(self) -> None:
        """Write pending events into the outbox now (still inside the transaction)."""
        if not self._pending:
            return
        rows = [
            {
                "event_id": envelope.event_id,
                "topic": payload.topic,
                "key": payload.key(),
                "envelope": envelope.model_dump(mode="json"),
            }
            for payload, envelope in self._pending
        ]
        await self.session.execute(sa.insert(self._tables.outbox), rows)
        self._pending = []

    async def commit(self) -> None:
        had_events = bool(self._pending) or self._written_in_sql
        await self.flush_events()
        await self.session.commit()
        self._written_in_sql = False
        if had_events and self._on_commit is not None:
            self._on_commit()

    async def rollback(self) -> None:
        self._pending = []
        self._written_in_sql = False
        await self.session.rollback()


class OutboxRelay:
    """Publishes outbox rows in commit order and deletes them once Kafka has acknowledged.

    Only one relay per service publishes at a time (a PostgreSQL advisory lock held on a
    dedicated connection); other replicas stand by. Two relays publishing side by side could
    reorder events of one key.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        tables: BusTables,
        producer: AIOKafkaProducer,
        *,
        service: str,
        topic_prefix: str,
        batch_size: int = 500,
        poll_interval: float = 0.2,
    ) -> None:
        self._engine = engine
        self._outbox = tables.outbox
        self._producer = producer
        self._service = service
        self._prefix = topic_prefix
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._wakeup = asyncio.Event()
        self._lock_key = advisory_key(f"outbox-relay:{service}")

    def nudge(self) -> None:
        """Called after a commit that wrote events, so they go out without waiting for the poll."""
        self._wakeup.set()

    async def run(self) -> None:
        while True:
            try:
                async with self._engine.connect() as lock_conn:
                    leader = await lock_conn.scalar(sa.select(sa.func.pg_try_advisory_lock(self._lock_key)))
                    await lock_conn.commit()
                    if not leader:
                        await asyncio.sleep(self._poll_interval * 10)
                        continue
                    try:
                        await self._pump()
                    finally:
                        await lock_conn.execute(sa.select(sa.func.pg_advisory_unlock(self._lock_key)))
                        await lock_conn.commit()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("outbox relay failed; retrying")
                await asyncio.sleep(1.0)

    async def _pump(self) -> None:
        while True:
            published = await self.publish_batch()
            if published >= self._batch_size:
                continue
            self._wakeup.clear()
            try:
                # asyncio.timeout, not wait_for: 3.11's wait_for can miss a cancellation that
                # races its timeout and never return (reproduced in analytics' rebuild loop).
                async with asyncio.timeout(self._poll_interval):
                    await self._wakeup.wait()
            except TimeoutError:
                pass

    def _batch_query(self) -> sa.Select:
        """The next rows to publish, in commit order, as (id, topic, key, event_type,
        event_version, correlation_id, value). The envelope goes out as the text PostgreSQL
        stores, never decoded and re-encoded here."""
        o = self._outbox
        envelope = o.c.envelope
        return (
            sa.select(
                o.c.id,
                o.c.topic,
                o.c.key,
                envelope["type"].astext.label("event_type"),
                envelope["version"].astext.label("event_version"),
                envelope["correlation_id"].astext.label("correlation_id"),
                sa.cast(envelope, sa.Text).label("value"),
            )
            .order_by(o.c.id)
            .limit(self._batch_size)
        )

    async def publish_batch(self) -> int:
        o = self._outbox
        async with self._engine.begin() as conn:
            rows = (await conn.execute(self._batch_query())).all()
            if not rows:
                OUTBOX_BACKLOG.labels(self._service).set(0)
                return 0
            deliveries = []
            for row in rows:
                deliveries.append(
                    await self._producer.send(
                        topic_name(self._prefix, row.topic),
                        value=row.value if isinstance(row.value, bytes) else row.value.encode(),
                        key=row.key.encode(),
                        headers=[
                            ("event_type", row.event_type.encode()),
                            ("event_version", str(row.event_version).encode()),
                            ("correlation_id", row.correlation_id.encode()),
                        ],
                    )
                )
            await asyncio.gather(*deliveries)
            await conn.execute(sa.delete(o).where(o.c.id.in_([row.id for row in rows])))
        for row in rows:
            EVENTS_PRODUCED.labels(self._service, row.topic).inc()
        return len(rows)

    async def drain(self, timeout: float) -> bool:
        """Wait (at most ``timeout`` seconds) until the running relay has published everything
        committed so far; True if the outbox is empty. Used at shutdown, so a commit made just
        before it is on Kafka now, not at the next start. Publishing stays with the relay's own
        loop (the leader): a second publisher could reorder a key's events."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            self.nudge()
            try:
                if not await self.backlog():
                    return True
            except Exception:  # the database is gone: nothing to wait for
                return False
            if asyncio.get_running_loop().time() >= deadline:
                return False
            await asyncio.sleep(0.05)

    async def backlog(self) -> int:
        async with self._engine.connect() as conn:
            count = await conn.scalar(sa.select(sa.func.count()).select_from(self._outbox))
        OUTBOX_BACKLOG.labels(self._service).set(count or 0)
        return count or 0


class BulkOutboxRelay(OutboxRelay):
    """The relay over a bulk outbox (``BusTables.bulk_outbox``): the envelope is stored as the
    text that is published and its headers are columns, so nothing is parsed on the way; it
    even leaves PostgreSQL as UTF-8 bytes, which go to Kafka as they are (no decoding into a
    str and encoding back, ~400 MB for a national delivery)."""

    def _batch_query(self) -> sa.Select:
        o = self._outbox
        return (
            sa.select(
                o.c.id,
                o.c.topic,
                o.c.key,
                o.c.event_type,
                o.c.event_version,
                o.c.correlation_id,
                sa.func.convert_to(o.c.envelope, "UTF8").label("value"),
            )
            .order_by(o.c.id)
            .limit(self._batch_size)
        )
