"""A minimal "service" for bus tests: bus tables, an effect table, and an event to carry."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.bus import IdempotentConsumer, UnitOfWork, bus_tables, make_producer, topic_name
from shared.db import make_sessionmaker
from shared.events import Envelope, InvitationSent

SCHEMA = "bustest"
metadata = sa.MetaData(schema=SCHEMA)
BUS = bus_tables(metadata)
# Deliberately NOT idempotent: one row per handled event, so a double handling shows.
effect = sa.Table(
    "effect",
    metadata,
    sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("pseudonym", sa.Text, nullable=False),
    sa.Column("event_id", sa.Uuid, nullable=False),
)
# What a producer committed, in the same transaction as its outbox rows.
produced = sa.Table("produced", metadata, sa.Column("event_id", sa.Uuid, primary_key=True))

TOPIC = InvitationSent.topic


async def create_schema(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        await conn.run_sync(metadata.create_all)


def event(i: int, pseudonym: str | None = None) -> InvitationSent:
    return InvitationSent(
        round_id="bus", kommunekode="101", pseudonym=pseudonym or f"p{i:06d}", step="invitation",
        channel="dev_sink", maalgruppe="dagpenge", stratum="101:dagpenge", sent_at=datetime(2026, 9, 1, tzinfo=UTC),
    )


def uow_factory(engine: AsyncEngine, on_commit=None):
    sessionmaker = make_sessionmaker(engine)
    return lambda: UnitOfWork(sessionmaker, BUS, source="bustest", on_commit=on_commit)


async def record_effect(uow: UnitOfWork, envelope: Envelope, payload: InvitationSent) -> None:
    if payload.pseudonym.startswith("fail"):
        raise RuntimeError("this event can never be handled")
    await uow.session.execute(sa.insert(effect).values(pseudonym=payload.pseudonym, event_id=envelope.event_id))


def consumer(bootstrap: str, prefix: str, engine: AsyncEngine, producer: AIOKafkaProducer, **kwargs) -> IdempotentConsumer:
    return IdempotentConsumer(
        service="bustest",
        bootstrap_servers=bootstrap,
        topic_prefix=prefix,
        handlers={"invitation.sent": record_effect},
        uow_factory=uow_factory(engine),
        tables=BUS,
        dead_letter_producer=producer,
        max_attempts=kwargs.pop("max_attempts", 2),
        retry_backoff=kwargs.pop("retry_backoff", 0.01),
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
        **kwargs,
    )


async def produce_raw(bootstrap: str, topic: str, messages: list[tuple[bytes, bytes]]) -> None:
    producer = make_producer(bootstrap, "bustest-raw")
    await producer.start()
    try:
        for key, value in messages:
            await producer.send(topic, value=value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


def wire(payload: InvitationSent, envelope: Envelope | None = None) -> tuple[bytes, bytes]:
    envelope = envelope or Envelope.wrap(payload, source="bustest", correlation_id="bus")
    return payload.key().encode(), envelope.model_dump_json().encode()


async def effects(engine: AsyncEngine) -> tuple[int, int]:
    """(rows, distinct events) in the effect table."""
    async with engine.connect() as conn:
        row = (await conn.execute(sa.select(sa.func.count(), sa.func.count(sa.distinct(effect.c.event_id))))).one()
    return row[0], row[1]


async def read_topic(bootstrap: str, topic: str, *, settle: float = 2.0, timeout: float = 60) -> list:
    """Everything on a topic: reads until nothing new arrives for ``settle`` seconds."""
    reader = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None)
    await reader.start()
    records = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        quiet_since = loop.time()
        while loop.time() < deadline and loop.time() - quiet_since < settle:
            batch = await reader.getmany(timeout_ms=200)
            for part in batch.values():
                records.extend(part)
                quiet_since = loop.time()
    finally:
        await reader.stop()
    return records


async def wait_until(predicate, timeout: float, what: str, interval: float = 0.1):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if result := await predicate():
            return result
        await asyncio.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what}")


def dlq_topic(prefix: str) -> str:
    return topic_name(prefix, TOPIC + ".dlq")


def new_event_id() -> uuid.UUID:
    return uuid.uuid4()
