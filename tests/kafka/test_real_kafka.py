"""What only a real, durable Kafka can show: a broker restart mid-stream, and a consumer group
of two replicas sharing and handing over partitions. Run with ``make test-kafka``."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest
import sqlalchemy as sa
from harness import BUS, TOPIC, consumer, create_schema, effects, event, produced, record_effect, uow_factory, wait_until

from shared.bus import IdempotentConsumer, OutboxRelay, ensure_topics, make_producer, topic_name
from shared.db import make_engine

pytestmark = pytest.mark.kafka


@pytest.fixture
async def engine(database_url):
    engine = make_engine(database_url)
    await create_schema(engine)
    yield engine
    await engine.dispose()


async def test_broker_restart_mid_stream_loses_nothing_and_duplicates_nothing(engine, durable_broker, topic_prefix):
    bootstrap = durable_broker.bootstrap_servers
    await ensure_topics(bootstrap, [topic_name(topic_prefix, TOPIC)])
    producer = make_producer(bootstrap, "restart-test")
    await producer.start()
    relay = OutboxRelay(engine, BUS, producer, service="bustest", topic_prefix=topic_prefix, batch_size=50, poll_interval=0.05)
    worker = consumer(bootstrap, topic_prefix, engine, producer, max_records=50)
    await worker.start()
    tasks = [asyncio.create_task(relay.run()), asyncio.create_task(worker.run())]
    make_uow = uow_factory(engine, on_commit=relay.nudge)
    total = 1200

    async def produce(start: int, stop: int) -> None:
        for i in range(start, stop, 10):
            async with make_uow() as uow:
                for j in range(i, min(i + 10, stop)):
                    envelope = uow.publish(event(j))
                    await uow.session.execute(sa.insert(produced).values(event_id=envelope.event_id))
                await uow.commit()
            await asyncio.sleep(0.01)

    try:
        await produce(0, total // 2)
        await wait_until(lambda: _at_least(engine, 50), 60, "the stream to flow")
        # Restart while events are in the outbox, in flight and being consumed.
        restart = asyncio.create_task(durable_broker.arestart())
        await produce(total // 2, total)  # the outbox keeps accepting while the broker is down
        await restart
        await wait_until(lambda: _at_least(engine, total), 180, "every event after the restart")
        await asyncio.sleep(2.0)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await worker.stop()
        await producer.stop()
    assert await effects(engine) == (total, total)


async def _at_least(engine, n: int) -> bool:
    return (await effects(engine))[1] >= n


async def test_two_replicas_share_partitions_and_a_rebalance_loses_nothing(engine, durable_broker, topic_prefix):
    bootstrap = durable_broker.bootstrap_servers
    topic = topic_name(topic_prefix, TOPIC)
    await ensure_topics(bootstrap, [topic], partitions=6)
    producer = make_producer(bootstrap, "rebalance-test")
    await producer.start()
    total = 3000
    from harness import produce_raw, wire

    await produce_raw(bootstrap, topic, [wire(event(i)) for i in range(total)])

    handled_by: Counter = Counter()

    def counting(name: str):
        async def handler(uow, envelope, payload):
            await asyncio.sleep(0.002)  # slow enough that the rebalance happens mid-stream
            await record_effect(uow, envelope, payload)
            handled_by[name] += 1

        return handler

    def replica(name: str) -> IdempotentConsumer:
        return IdempotentConsumer(
            service="bustest",
            bootstrap_servers=bootstrap,
            topic_prefix=topic_prefix,
            handlers={"invitation.sent": counting(name)},
            uow_factory=uow_factory(engine),
            tables=BUS,
            dead_letter_producer=producer,
            max_records=20,
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
        )

    first, second = replica("first"), replica("second")
    await first.start()
    first_task = asyncio.create_task(first.run())
    try:
        await wait_until(lambda: _at_least(engine, 300), 90, "the first replica to get going")
        await second.start()  # joins: the group rebalances and the partitions are shared
        second_task = asyncio.create_task(second.run())
        await wait_until(lambda: _both_working(handled_by), 90, "both replicas to handle events")
        assert second._consumer.assignment() and first._consumer.assignment()
        assert not (second._consumer.assignment() & first._consumer.assignment())
        # The first replica leaves mid-stream: its partitions move to the second.
        first_task.cancel()
        await asyncio.gather(first_task, return_exceptions=True)
        await first.stop()
        await wait_until(lambda: _at_least(engine, total), 180, "every event")
        await asyncio.sleep(2.0)
        second_task.cancel()
        await asyncio.gather(second_task, return_exceptions=True)
        await second.stop()
    finally:
        await producer.stop()
    assert await effects(engine) == (total, total)
    assert handled_by["first"] > 0 and handled_by["second"] > 0


async def _both_working(handled_by: Counter) -> bool:
    baseline = dict(handled_by)
    await asyncio.sleep(0.5)
    return handled_by["second"] > baseline.get("second", 0) and handled_by["first"] > 0
