"""The bus against a real broker and real PostgreSQL: outbox, idempotent consumer, dead letters,
and crashes at arbitrary points."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from harness import (
    BUS,
    TOPIC,
    consumer,
    create_schema,
    dlq_topic,
    effects,
    event,
    produce_raw,
    produced,
    read_topic,
    record_effect,
    uow_factory,
    wait_until,
    wire,
)

from shared.bus import OutboxRelay, ensure_topics, make_producer, topic_name
from shared.db import make_engine
from shared.events import Envelope
from shared.testing.outage import Outage

HERE = Path(__file__).resolve().parent


@pytest.fixture
async def engine(database_url):
    engine = make_engine(database_url)
    await create_schema(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def producer(kafka_bootstrap, topic_prefix):
    await ensure_topics(kafka_bootstrap, [topic_name(topic_prefix, TOPIC)])
    producer = make_producer(kafka_bootstrap, "bustest")
    await producer.start()
    yield producer
    await producer.stop()


async def test_outbox_publishes_what_commits_and_nothing_that_rolls_back(engine, producer, kafka_bootstrap, topic_prefix):
    relay = OutboxRelay(engine, BUS, producer, service="bustest", topic_prefix=topic_prefix, poll_interval=0.05)
    make_uow = uow_factory(engine, on_commit=relay.nudge)
    committed = []
    async with make_uow() as uow:
        committed += [uow.publish(event(i)) for i in range(5)]
        await uow.commit()
    async with make_uow() as uow:
        uow.publish(event(99))
        # leaving without commit: rolled back, event and all
    async with make_uow() as uow:
        uow.publish(event(98))
        await uow.session.execute(sa.text("SELECT 1"))
        await uow.rollback()

    relay_task = asyncio.create_task(relay.run())
    try:
        await wait_until(lambda: _backlog_is(relay, 0), 30, "the outbox to drain")
    finally:
        relay_task.cancel()
    records = await read_topic(kafka_bootstrap, topic_name(topic_prefix, TOPIC))
    seen = [Envelope.model_validate_json(r.value) for r in records]
    assert sorted(e.event_id for e in seen) == sorted(e.event_id for e in committed)
    assert all(r.key == b"p%06d" % i or r.key.startswith(b"p") for i, r in enumerate(records))
    # Same key, same partition, commit order kept.
    by_key = {}
    for r in records:
        by_key.setdefault(r.key, set()).add(r.partition)
    assert all(len(parts) == 1 for parts in by_key.values())


async def _backlog_is(relay, n):
    return await relay.backlog() == n


async def test_drain_at_shutdown_waits_for_the_relay_to_publish_what_committed(engine, producer, kafka_bootstrap, topic_prefix):
    """ServiceRuntime drains its relays before it stops: events committed just before a
    shutdown are on Kafka when it returns, not at the next start. The drain only waits; the
    relay's own loop (the leader) publishes."""
    relay = OutboxRelay(engine, BUS, producer, service="bustest-drain", topic_prefix=topic_prefix, poll_interval=30)
    make_uow = uow_factory(engine, on_commit=relay.nudge)
    async with make_uow() as uow:
        committed = [uow.publish(event(1000 + i)) for i in range(40)]
        await uow.commit()
    assert not await relay.drain(0.3)  # no relay running: nothing publishes, the drain gives up
    relay_task = asyncio.create_task(relay.run())
    try:
        await wait_until(lambda: _backlog_is(relay, 0), 30, "the first events to go out")
        async with uow_factory(engine)() as uow:  # committed without waking the relay
            committed += [uow.publish(event(2000 + i)) for i in range(40)]
            await uow.commit()
        # The relay polls every 30 s: the drain's own nudge is what gets these out in time.
        assert await relay.drain(10)
    finally:
        relay_task.cancel()
    assert await relay.backlog() == 0
    records = await read_topic(kafka_bootstrap, topic_name(topic_prefix, TOPIC))
    published = {Envelope.model_validate_json(r.value).event_id for r in records}
    assert {e.event_id for e in committed} <= published


async def test_duplicates_are_handled_once(engine, producer, kafka_bootstrap, topic_prefix):
    envelopes = [Envelope.wrap(event(i), source="t", correlation_id="c") for i in range(20)]
    messages = [wire(event(i), env) for i, env in enumerate(envelopes)]
    # Every event three times, as an at-least-once relay may deliver after crashes.
    await produce_raw(kafka_bootstrap, topic_name(topic_prefix, TOPIC), messages * 3)
    worker = consumer(kafka_bootstrap, topic_prefix, engine, producer)
    await worker.start()
    task = asyncio.create_task(worker.run())
    try:
        await wait_until(lambda: _effects_are(engine, 20), 60, "20 effects")
        await asyncio.sleep(1.0)  # give any double handling the chance to show
    finally:
        task.cancel()
        await worker.stop()
    assert await effects(engine) == (20, 20)


async def _effects_are(engine, n):
    return (await effects(engine))[1] >= n


async def test_poison_and_failing_events_are_dead_lettered_and_the_stream_goes_on(engine, producer, kafka_bootstrap, topic_prefix):
    topic = topic_name(topic_prefix, TOPIC)
    await ensure_topics(kafka_bootstrap, [topic])
    key = b"same-key"  # one partition, so the good events queue behind the bad ones
    good_before = Envelope.wrap(event(1, "ok-1"), source="t", correlation_id="c")
    failing = Envelope.wrap(event(2, "fail-2"), source="t", correlation_id="c")
    good_after = Envelope.wrap(event(3, "ok-3"), source="t", correlation_id="c")
    unknown_version = good_before.model_copy(update={"version": 42, "event_id": __import__("uuid").uuid4()})
    await produce_raw(
        kafka_bootstrap,
        topic,
        [
            (key, good_before.model_dump_json().encode()),
            (key, b"\x00\x01 not json at all"),
            (key, unknown_version.model_dump_json().encode()),
            (key, failing.model_dump_json().encode()),
            (key, good_after.model_dump_json().encode()),
        ],
    )
    worker = consumer(kafka_bootstrap, topic_prefix, engine, producer)
    await worker.start()
    task = asyncio.create_task(worker.run())
    try:
        await wait_until(lambda: _effects_are(engine, 2), 60, "the good events")
    finally:
        task.cancel()
        await worker.stop()
    async with engine.connect() as conn:
        handled = set((await conn.execute(sa.text("SELECT pseudonym FROM bustest.effect"))).scalars())
        verdicts = dict((await conn.execute(sa.text("SELECT event_id, outcome FROM bustest.processed_event"))).all())
    assert handled == {"ok-1", "ok-3"}
    assert verdicts[failing.event_id] == "dead_lettered"

    dead = await read_topic(kafka_bootstrap, dlq_topic(topic_prefix))
    assert len(dead) == 3
    errors = [dict(r.headers)["x-error"].decode() for r in dead]
    assert "PoisonMessage" in errors[0] or "JSON" in errors[0] or "json" in errors[0].lower()
    assert "version 42" in errors[1]
    assert "can never be handled" in errors[2]
    assert all(dict(r.headers)["x-original-topic"].decode() == topic for r in dead)
    assert dead[0].value == b"\x00\x01 not json at all"  # the original bytes, for replay after a fix

    # The group's offsets moved past everything: a restarted member gets nothing again.
    again = consumer(kafka_bootstrap, topic_prefix, engine, producer)
    await again.start()
    try:
        assert not await asyncio.wait_for(_poll_nonempty(again), 15)
    finally:
        await again.stop()


async def _poll_nonempty(worker) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 8
    while loop.time() < deadline:
        batch = await worker._consumer.getmany(timeout_ms=300)
        if any(batch.values()):
            return True
    return False


def _spawn(args: list[str], env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(HERE / "bus_process.py"), *args],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


async def test_consumer_killed_repeatedly_handles_every_event_exactly_once(engine, database_url, kafka_bootstrap, topic_prefix, producer):
    total = 1500
    await produce_raw(kafka_bootstrap, topic_name(topic_prefix, TOPIC), [wire(event(i)) for i in range(total)])
    env = {"DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "KAFKA_TOPIC_PREFIX": topic_prefix}
    kills = 0
    process = _spawn(["consume"], env)
    try:
        # Kill at points of progress, not of time: mid-stream whatever the broker's speed.
        for handled_at_least in (100, 500, 900):
            await wait_until(lambda n=handled_at_least: _effects_are(engine, n), 120, f"{handled_at_least} events handled")
            if (await effects(engine))[1] >= total:
                break
            process.send_signal(signal.SIGKILL)  # no shutdown hooks, no final offset commit
            process.wait()
            kills += 1
            process = _spawn(["consume"], env)
        await wait_until(lambda: _effects_are(engine, total), 120, "every event")
        await asyncio.sleep(2.0)
    finally:
        process.kill()
        process.wait()
    rows, distinct = await effects(engine)
    assert kills >= 2, "the consumer should have been killed mid-stream at least twice"
    assert distinct == total  # nothing lost
    assert rows == total  # nothing handled twice, although the effect itself is not idempotent


async def test_relay_killed_repeatedly_loses_no_committed_event(engine, database_url, kafka_bootstrap, topic_prefix, producer):
    total = 1000
    env = {"DATABASE_URL": database_url, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "KAFKA_TOPIC_PREFIX": topic_prefix}
    rng = random.Random(5)
    kills = 0
    while True:
        process = _spawn(["produce", str(total)], env)
        try:
            line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 60)
            assert line.strip() == b"ready"
            if kills < 4:
                await asyncio.sleep(rng.uniform(0.3, 1.5))
                if process.poll() is None:
                    process.send_signal(signal.SIGKILL)
                    process.wait()
                    kills += 1
                    continue
            rest = await asyncio.wait_for(asyncio.to_thread(process.stdout.read), 120)
            assert b"done" in rest
            break
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
    async with engine.connect() as conn:
        committed = set((await conn.execute(sa.select(produced.c.event_id))).scalars())
        left = await conn.scalar(sa.select(sa.func.count()).select_from(BUS.outbox))
    records = await read_topic(kafka_bootstrap, topic_name(topic_prefix, TOPIC), settle=3)
    published = {Envelope.model_validate_json(r.value).event_id for r in records}
    assert len(committed) == total
    assert left == 0
    assert published == committed  # every committed event reached Kafka; nothing uncommitted did


async def test_a_database_outage_is_waited_out_never_dead_lettered(engine, database_url, producer, kafka_bootstrap, topic_prefix):
    outage = Outage.in_front_of(database_url)
    proxied_url = await outage.proxied_url(database_url)
    proxied = make_engine(proxied_url)
    topic = topic_name(topic_prefix, TOPIC)
    await ensure_topics(kafka_bootstrap, [topic])
    worker = consumer(kafka_bootstrap, topic_prefix, proxied, producer, max_attempts=2, retry_backoff=0.05)
    await worker.start()
    task = asyncio.create_task(worker.run())
    try:
        await produce_raw(kafka_bootstrap, topic, [wire(event(i)) for i in range(3)])
        await wait_until(lambda: _effects_are(engine, 3), 60, "the first events")
        # The database goes away for longer than every retry of a failing handler together,
        # and events keep coming meanwhile.
        outage.down()
        await produce_raw(kafka_bootstrap, topic, [wire(event(i)) for i in range(3, 8)])
        await asyncio.sleep(3.0)
        assert (await effects(engine))[1] == 3
        outage.up()
        await wait_until(lambda: _effects_are(engine, 8), 60, "the events after the outage")
    finally:
        task.cancel()
        await worker.stop()
        await outage.stop()
        await proxied.dispose()
    assert await effects(engine) == (8, 8)  # each once
    assert await read_topic(kafka_bootstrap, dlq_topic(topic_prefix), timeout=10) == []
