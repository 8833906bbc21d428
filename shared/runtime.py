"""What every service's lifespan owns: engine, migrations, producer, outbox relay, consumer and
background workers, started in order and stopped in reverse."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.bus import (
    BulkOutboxRelay,
    BusTables,
    IdempotentConsumer,
    OutboxRelay,
    UnitOfWork,
    ensure_topics,
    make_producer,
    topic_name,
)
from shared.bus.consumer import BatchPreparation, Handler, handler_table
from shared.db import make_engine, make_sessionmaker, migrate
from shared.events import TOPICS, EventPayload
from shared.infra import resolve_database_url, resolve_kafka
from shared.settings import ServiceSettings

logger = logging.getLogger(__name__)

_startup_frozen = False


def _freeze_startup_objects() -> None:
    """Once per process, when the first service has started: everything loaded by then
    (modules, the app, clients) lives as long as the process, so it is moved out of the cyclic
    collector's reach (``gc.freeze``, after one collection so no garbage is kept). A full
    collection then walks only what the service allocated since: in analytics it walked the
    ~230,000 objects of its imports every ~7 s, 130-150 ms each time with the event loop (the
    consumer and every read) stopped, the largest part of the tail of its freshness."""
    global _startup_frozen
    if not _startup_frozen:
        gc.collect()
        gc.freeze()
        _startup_frozen = True

Worker = Callable[["ServiceRuntime"], Awaitable[None]]


class ServiceRuntime:
    def __init__(
        self,
        settings: ServiceSettings,
        *,
        tables: BusTables,
        migrations_dir: Path,
        handlers: dict[type[EventPayload], Handler] | None = None,
        workers: dict[str, Worker] | None = None,
        prepare_batch: BatchPreparation | None = None,
    ) -> None:
        self.settings = settings
        self._prepare_batch = prepare_batch  # the consumer's, see shared.bus.consumer.BatchPreparation
        self.tables = tables
        self._migrations_dir = migrations_dir
        # Keyed by payload class; a handler for an unknown event type stops the start here.
        self._handlers = handler_table(handlers or {})
        self._workers = workers or {}
        self._tasks: list[asyncio.Task] = []
        self.engine: AsyncEngine
        self.sessionmaker: async_sessionmaker[AsyncSession]
        self.consumer: IdempotentConsumer | None = None
        self.relay: OutboxRelay
        self.bulk_relay: BulkOutboxRelay | None = None

    def uow(self) -> UnitOfWork:
        return UnitOfWork(self.sessionmaker, self.tables, source=self.settings.service_name, on_commit=self.nudge_relays)

    def nudge_relays(self) -> None:
        """After a commit that wrote events (also those written in SQL, not by uow.publish)."""
        self.relay.nudge()
        if self.bulk_relay is not None:
            self.bulk_relay.nudge()

    async def __aenter__(self) -> ServiceRuntime:
        s = self.settings
        database_url = resolve_database_url(s.database_url, s.local_state_dir)
        self.bootstrap_servers = resolve_kafka(s.kafka_bootstrap_servers, s.local_state_dir)
        self.engine = make_engine(database_url)
        if s.migrate_on_start:
            await migrate(self.engine, self._migrations_dir, s.schema_name)
        self.sessionmaker = make_sessionmaker(self.engine)

        await ensure_topics(
            self.bootstrap_servers,
            [topic_name(s.kafka_topic_prefix, t) for t in TOPICS],
            partitions=s.kafka_topic_partitions,
            replication_factor=s.kafka_replication_factor,
        )
        self.producer = make_producer(self.bootstrap_servers, client_id=s.service_name)
        await self.producer.start()
        self.relay = OutboxRelay(
            self.engine,
            self.tables,
            self.producer,
            service=s.service_name,
            topic_prefix=s.kafka_topic_prefix,
            batch_size=s.outbox_batch_size,
            poll_interval=s.outbox_poll_interval_seconds,
        )
        self.spawn("outbox-relay", self.relay.run)
        if self.tables.bulk_outbox is not None:
            self.bulk_relay = BulkOutboxRelay(
                self.engine,
                BusTables(outbox=self.tables.bulk_outbox, processed_event=self.tables.processed_event),
                self.producer,
                service=f"{s.service_name}-bulk",  # its own leader lock beside the outbox relay's
                topic_prefix=s.kafka_topic_prefix,
                batch_size=s.bulk_outbox_batch_size,
                poll_interval=s.outbox_poll_interval_seconds,
            )
            self.spawn("bulk-outbox-relay", self.bulk_relay.run)
        if self._handlers:
            self.consumer = IdempotentConsumer(
                service=s.service_name,
                bootstrap_servers=self.bootstrap_servers,
                topic_prefix=s.kafka_topic_prefix,
                handlers=self._handlers,
                uow_factory=self.uow,
                tables=self.tables,
                dead_letter_producer=self.producer,
                max_attempts=s.consumer_max_attempts,
                retry_backoff=s.consumer_retry_backoff_seconds,
                max_records=s.consumer_batch_max_records,
                session_timeout_ms=s.consumer_session_timeout_ms,
                heartbeat_interval_ms=s.consumer_heartbeat_interval_ms,
                fetch_max_wait_ms=s.consumer_fetch_max_wait_ms,
                prepare=self._prepare_batch,
            )
            await self.consumer.start()
            self.spawn("consumer", self.consumer.run)
        for name, worker in self._workers.items():
            self.spawn(name, lambda worker=worker: worker(self))
        _freeze_startup_objects()
        return self

    def spawn(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run ``run`` as a supervised background loop of the service (restarted if it fails,
        cancelled when the runtime stops): every loop of a service is one of these."""
        async def supervised() -> None:
            # A background loop that dies would silently stop the service's work: restart it.
            while True:
                try:
                    await run()
                    return
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("background task failed; restarting", extra={"fields": {"task": name}})
                    await asyncio.sleep(1.0)

        self._tasks.append(asyncio.create_task(supervised(), name=f"{self.settings.service_name}:{name}"))

    async def __aexit__(self, *exc_info) -> None:
        # Events committed just before shutdown go out now rather than at the next start.
        for relay in (self.relay, self.bulk_relay):
            if relay is not None and not await relay.drain(self.settings.shutdown_drain_seconds):
                logger.warning("shutting down with events left in the outbox; they go out at the next start")
        for task in reversed(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.consumer is not None:
            await self.consumer.stop()
        await self.producer.stop()
        await self.engine.dispose()

    async def health(self) -> dict[str, str]:
        checks: dict[str, str] = {}
        try:
            async with self.engine.connect() as conn:
                await asyncio.wait_for(conn.execute(sa.text("SELECT 1")), 2)
            checks["database"] = "ok"
        except Exception as exc:
            checks["database"] = f"error: {type(exc).__name__}"
        try:
            await asyncio.wait_for(self.producer.client.fetch_all_metadata(), 3)
            checks["broker"] = "ok"
        except Exception as exc:
            checks["broker"] = f"error: {type(exc).__name__}"
        return checks
