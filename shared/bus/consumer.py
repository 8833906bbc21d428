"""Idempotent consumer: every event's effects and its "processed" mark commit in one
transaction, and the Kafka offset is committed only after that transaction. A crash anywhere
redelivers at most what was not yet committed, and the processed mark turns the redelivery
into a no-op.

A message that keeps failing (or cannot be parsed) goes to ``<topic>.dlq`` with the error in its
headers, and the partition moves on.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from itertools import groupby
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import ConsumerRecord

from shared.bus.kafka import DEAD_LETTER_SUFFIX, topic_name
from shared.bus.outbox import UnitOfWork
from shared.bus.tables import BusTables
from shared.db import database_unavailable
from shared.events import REGISTRY, Envelope, EventPayload
from shared.observability import CONSUMER_LAG, DEAD_LETTERS, EVENTS_CONSUMED, correlation_id_var

logger = logging.getLogger(__name__)
# The longest wait between tries while the database cannot be reached (seconds).
UNAVAILABLE_BACKOFF_MAX = 5.0

Handler = Callable[[UnitOfWork, Envelope, Any], Awaitable[None]]
BatchHandler = Callable[[UnitOfWork, list[tuple[Envelope, Any]]], Awaitable[None]]
# Called in a batch's transaction before its handlers, with the payloads they will handle: where
# handlers take locks, it takes all the batch needs first, in one order (no two replicas' batches
# can then wait for each other).
BatchPreparation = Callable[[UnitOfWork, list[Any]], Awaitable[None]]


class UnknownEventType(ValueError):
    """A handler for an event type no payload is registered for (a misspelt type would otherwise
    subscribe to nothing, silently): raised when the service starts."""


def handler_table(handlers: Mapping[type[EventPayload] | str, Handler]) -> dict[str, Handler]:
    """Handlers keyed by the payload class they take, as the consumer looks them up: by event
    type (every version of the type goes to the handler, which says in its annotation which
    versions it reads). A key that is no registered event type, or two handlers for one type,
    is an error at start-up. (An event-type string is taken as a key too, checked the same way.)"""
    known = {type_ for type_, _ in REGISTRY}
    table: dict[str, Handler] = {}
    for key, handler in handlers.items():
        if isinstance(key, type) and issubclass(key, EventPayload):
            event_type = getattr(key, "event_type", None)
        elif isinstance(key, str):
            event_type = key
        else:
            event_type = None
        if event_type not in known:
            raise UnknownEventType(f"a handler for {key!r}, which is no registered event type (shared.events)")
        if table.get(event_type, handler) is not handler:
            raise ValueError(f"two handlers for event type {event_type!r}")
        table[event_type] = handler
    return table


def batch_handler(handler: BatchHandler) -> BatchHandler:
    """Mark a handler that takes every new event of its type in a consumed batch at once (in
    order, inside the batch's one transaction), so it can write them with a few set-based
    statements instead of a few statements per event."""
    handler.handles_batches = True  # type: ignore[attr-defined]
    return handler


class PoisonMessage(Exception):
    """A message no retry can fix (unparseable, unknown type or version)."""


class _CommitOnRevoke(ConsumerRebalanceListener):
    def __init__(self, owner: IdempotentConsumer) -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Hand over cleanly: offsets of what we finished go to the group before another
        # member takes the partitions (anything else is redelivered and deduplicated).
        await self._owner.commit_pending(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        logger.info("partitions assigned", extra={"fields": {"partitions": [f"{tp.topic}/{tp.partition}" for tp in assigned]}})


class IdempotentConsumer:
    def __init__(
        self,
        *,
        service: str,
        bootstrap_servers: str,
        topic_prefix: str,
        handlers: Mapping[type[EventPayload] | str, Handler],
        uow_factory: Callable[[], UnitOfWork],
        tables: BusTables,
        dead_letter_producer: AIOKafkaProducer,
        max_attempts: int = 3,
        retry_backoff: float = 0.2,
        max_records: int = 200,
        group_id: str | None = None,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 2_000,
        fetch_max_wait_ms: int = 100,
        prepare: BatchPreparation | None = None,
    ) -> None:
        self._service = service
        self._prepare = prepare
        self._handlers = handlers = handler_table(handlers)
        self._uow_factory = uow_factory
        self._processed = tables.processed_event
        self._mark_statement = sa.text(
            f"INSERT INTO {self._processed.fullname} (consumer, event_id, outcome) "
            "SELECT :consumer, e, :outcome FROM unnest(CAST(:ids AS uuid[])) AS e "
            "ON CONFLICT DO NOTHING RETURNING event_id"
        )
        self._dlq = dead_letter_producer
        self._prefix = topic_prefix
        self._max_attempts = max_attempts
        self._retry_backoff = retry_backoff
        self._max_records = max_records
        self._group = group_id or topic_name(topic_prefix, service)
        logical_topics = sorted({model.topic for (type_, _), model in REGISTRY.items() if type_ in handlers})
        # Kafka topic name (with the deployment's prefix) -> logical topic.
        self._topics_by_name = {topic_name(topic_prefix, topic): topic for topic in logical_topics}
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers,
            group_id=self._group,
            client_id=f"{service}-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=max_records,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=heartbeat_interval_ms,
            max_partition_fetch_bytes=8 * 1024 * 1024,
            # How long the broker may hold a fetch that finds nothing new. Kafka answers as soon
            # as a record arrives; Tansu (the embedded default) holds it the whole time, so
            # aiokafka's default wait is added to the latency of an event there.
            fetch_max_wait_ms=fetch_max_wait_ms,
        )
        self._pending_offsets: dict[TopicPartition, int] = {}

    @property
    def topics(self) -> list[str]:
        return list(self._topics_by_name)

    async def start(self) -> None:
        await self._consumer.start()
        self._consumer.subscribe(self.topics, listener=_CommitOnRevoke(self))

    async def stop(self) -> None:
        try:
            await self.commit_pending(list(self._pending_offsets))
        finally:
            await self._consumer.stop()

    async def run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=self._max_records)
            if not batches:
                continue
            await self._process_batches(batches)
            for tp, records in batches.items():
                self._pending_offsets[tp] = records[-1].offset + 1
            await self.commit_pending(list(batches))  # one offset commit, after the transaction
            self._record_lag(batches.keys())

    async def _process_batches(self, batches: dict[TopicPartition, list[ConsumerRecord]]) -> None:
        """All partitions of one fetch in one transaction: a busy consumer pays one commit per
        fetch, not one per partition. Order holds, as it is only ever per partition (per key), and
        each partition's records stay in order. If anything in it fails or is poison, partition
        by partition (and there, message by message)."""
        if len(batches) > 1:
            try:
                items = [(record, *self._decode(record)) for records in batches.values() for record in records]
            except PoisonMessage:
                items = None
            if items is not None:
                try:
                    await self._handle_in_one_transaction(items)
                    return
                except Exception:
                    logger.warning("batch failed; retrying partition by partition", exc_info=True)
        for tp, records in batches.items():
            await self._process_partition_batch(tp, records)

    async def commit_pending(self, partitions: list[TopicPartition]) -> None:
        offsets = {tp: self._pending_offsets.pop(tp) for tp in partitions if tp in self._pending_offsets}
        if not offsets:
            return
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # The transaction is committed; a redelivery is a duplicate we will skip.
            logger.warning("offset commit failed; events will be redelivered and deduplicated", extra={"fields": {"error": type(exc).__name__}})

    def _record_lag(self, partitions) -> None:
        for tp in partitions:
            highwater = self._consumer.highwater(tp)
            position = self._pending_offsets.get(tp)
            if highwater is not None:
                committed_position = position if position is not None else highwater
                CONSUMER_LAG.labels(self._service, self._topics_by_name.get(tp.topic, tp.topic), str(tp.partition)).set(
                    max(highwater - committed_position, 0)
                )

    # --- processing -------------------------------------------------------------------------------

    def _decode(self, record: ConsumerRecord) -> tuple[Envelope, EventPayload]:
        try:
            envelope = Envelope.model_validate_json(record.value)
            if envelope.type not in self._handlers:
                raise PoisonMessage(f"no handler for event type {envelope.type!r}")
            return envelope, envelope.payload()
        except PoisonMessage:
            raise
        except Exception as exc:  # validation errors, bad JSON, unknown versions
            raise PoisonMessage(f"{type(exc).__name__}: {exc}"[:2000]) from exc

    async def _process_partition_batch(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        """Try the whole batch in one transaction; if anything in it fails, fall back to one
        transaction per message so one bad message cannot hold the others back."""
        decoded: list[tuple[ConsumerRecord, Envelope, EventPayload]] = []
        poison: list[tuple[ConsumerRecord, str]] = []
        for record in records:
            try:
                decoded.append((record, *self._decode(record)))
            except PoisonMessage as exc:
                poison.append((record, str(exc)))
        if not poison and len(decoded) > 1:
            try:
                await self._handle_in_one_transaction(decoded)
                return
            except Exception:
                logger.warning("batch failed; retrying message by message", exc_info=True)
        poison_offsets = {record.offset: error for record, error in poison}
        by_offset = {record.offset: (record, envelope, payload) for record, envelope, payload in decoded}
        for record in records:
            if record.offset in poison_offsets:
                await self._dead_letter(record, poison_offsets[record.offset], envelope=None)
            else:
                await self._handle_with_retries(*by_offset[record.offset])

    async def _mark_processed(self, uow: UnitOfWork, envelopes: list[Envelope], outcome: str) -> set:
        """Insert the processed marks for a batch in one statement; returns the ids that were new."""
        # One array parameter, so the statement text is the same for every batch: compiling a
        # multi-row VALUES per batch was half of a busy consumer's CPU.
        inserted = await uow.session.execute(
            self._mark_statement,
            {"consumer": self._group, "outcome": outcome, "ids": [str(e.event_id) for e in envelopes]},
        )
        return {uuid.UUID(str(value)) for value in inserted.scalars()}

    async def _handle_in_one_transaction(self, items: list[tuple[ConsumerRecord, Envelope, EventPayload]]) -> None:
        outcomes = []
        async with self._uow_factory() as uow:
            fresh = await self._mark_processed(uow, [envelope for _, envelope, _ in items], "handled")
            new: list[tuple[Envelope, EventPayload]] = []
            for record, envelope, payload in items:
                if envelope.event_id in fresh:
                    fresh.discard(envelope.event_id)  # the same event twice in one batch: handle it once
                    new.append((envelope, payload))
                    outcomes.append((record, "handled"))
                else:
                    outcomes.append((record, "duplicate"))
            if self._prepare is not None and new:
                await self._prepare(uow, [payload for _, payload in new])
            for event_type, run in groupby(new, key=lambda item: item[0].type):
                await self._dispatch(uow, self._handlers[event_type], list(run))
            await uow.commit()
        for record, outcome in outcomes:
            EVENTS_CONSUMED.labels(self._service, self._topics_by_name.get(record.topic, record.topic), outcome).inc()

    async def _dispatch(self, uow: UnitOfWork, handler, run: list[tuple[Envelope, EventPayload]]) -> None:
        """Hand a run of consecutive same-type events to their handler, keeping their order."""
        if getattr(handler, "handles_batches", False):
            token = correlation_id_var.set(run[0][0].correlation_id)
            try:
                await handler(uow, run)
            finally:
                correlation_id_var.reset(token)
            return
        for envelope, payload in run:
            token = correlation_id_var.set(envelope.correlation_id)
            try:
                await handler(uow, envelope, payload)
            finally:
                correlation_id_var.reset(token)

    async def _handle_with_retries(self, record: ConsumerRecord, envelope: Envelope, payload: EventPayload) -> None:
        """Handle one event, retrying; after ``max_attempts`` failures of the handler, dead-letter
        it. A database that cannot be reached (restarting, connections lost) is not the event's
        fault: the consumer waits for it (backing off up to ``UNAVAILABLE_BACKOFF_MAX`` seconds)
        without spending attempts, holding the partition so order is kept."""
        last_error = ""
        attempt = waits = 0
        while attempt < self._max_attempts:
            try:
                await self._handle_in_one_transaction([(record, envelope, payload)])
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if database_unavailable(exc):
                    waits += 1
                    logger.warning(
                        "database unavailable; waiting to handle the event",
                        extra={"fields": {"event_id": str(envelope.event_id), "event_type": envelope.type, "waits": waits,
                                          "error": type(exc).__name__}},
                    )
                    await asyncio.sleep(min(self._retry_backoff * 2 ** min(waits, 10), UNAVAILABLE_BACKOFF_MAX))
                    continue
                attempt += 1
                last_error = f"{type(exc).__name__}: {exc}"[:2000]
                logger.warning(
                    "handler failed",
                    extra={"fields": {"event_id": str(envelope.event_id), "event_type": envelope.type, "attempt": attempt}},
                    exc_info=True,
                )
                if attempt < self._max_attempts:
                    await asyncio.sleep(self._retry_backoff * 2 ** (attempt - 1))
        await self._dead_letter(record, last_error, envelope=envelope)

    async def _dead_letter(self, record: ConsumerRecord, error: str, *, envelope: Envelope | None) -> None:
        logical = self._topics_by_name.get(record.topic, record.topic)
        await self._dlq.send_and_wait(
            topic_name(self._prefix, logical + DEAD_LETTER_SUFFIX),
            value=record.value,
            key=record.key,
            headers=[
                ("x-error", error.encode()),
                ("x-consumer", self._group.encode()),
                ("x-original-topic", record.topic.encode()),
                ("x-original-partition", str(record.partition).encode()),
                ("x-original-offset", str(record.offset).encode()),
            ],
        )
        if envelope is not None:
            # Remember the verdict so a redelivery does not dead-letter the same event again.
            async with self._uow_factory() as uow:
                await self._mark_processed(uow, [envelope], "dead_lettered")
                await uow.commit()
        DEAD_LETTERS.labels(self._service, logical).inc()
        EVENTS_CONSUMED.labels(self._service, logical, "dead_lettered").inc()
        logger.error(
            "event dead-lettered",
            extra={"fields": {"topic": logical, "partition": record.partition, "offset": record.offset, "error": error[:300]}},
        )
