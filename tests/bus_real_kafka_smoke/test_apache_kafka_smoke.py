"""Smoke test: a REAL Apache Kafka 4.x broker (KRaft, jars from Maven Central).

Starts the broker from shared/testing/apache_kafka.py in a temp dir, creates a
3-partition topic with aiokafka's admin client, produces, consumes with a
consumer group and manual commits, restarts the broker on the same port and
data dir, and checks that the records and the committed offsets survived.

Needs java (17+) and, on first run, mvn + Maven Central; skipped only when java
is missing. Run alone with:  pytest -m kafka tests/bus_real_kafka_smoke -s
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from shared.testing.apache_kafka import ApacheKafkaBroker, java_available

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.skipif(
        not java_available(),
        reason="java not found on PATH: the real Apache Kafka broker needs Java 17+",
    ),
    pytest.mark.timeout(600),  # first run downloads ~45 MB of jars via mvn
]

TOPIC = "smoke.survey-events"
GROUP = "smoke-group"
PARTITIONS = 3
PER_PARTITION = 10
COMMIT_AT = 6  # per partition: records [0, 6) processed and committed, [6, 10) not


async def _consume(consumer: AIOKafkaConsumer, expected: int, timeout: float = 60) -> list:
    records: list = []
    deadline = time.monotonic() + timeout
    while len(records) < expected:
        if time.monotonic() > deadline:
            raise AssertionError(f"consumed {len(records)} of {expected} records in {timeout}s")
        batch = await consumer.getmany(timeout_ms=500)
        for msgs in batch.values():
            records.extend(msgs)
    # nothing more than expected shows up
    extra = await consumer.getmany(timeout_ms=1000)
    records.extend(m for msgs in extra.values() for m in msgs)
    return records


def _consumer(broker: ApacheKafkaBroker, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=broker.bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


async def test_real_kafka_survives_restart_with_committed_offsets(tmp_path: Path) -> None:
    broker = ApacheKafkaBroker(tmp_path / "kafka")
    timings: dict[str, float] = {}
    try:
        t0 = time.monotonic()
        await broker.astart(timeout=120)
        timings["start"] = time.monotonic() - t0
        bootstrap = broker.bootstrap_servers

        # -- topic with 3 partitions via the admin client
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(TOPIC, num_partitions=PARTITIONS, replication_factor=1)])
            described = await admin.describe_topics([TOPIC])
        finally:
            await admin.close()
        assert len(described[0]["partitions"]) == PARTITIONS

        # -- produce 10 records to each partition
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for p in range(PARTITIONS):
                for i in range(PER_PARTITION):
                    meta = await producer.send_and_wait(
                        TOPIC, f"p{p}-m{i}".encode(), key=f"k{p}".encode(), partition=p
                    )
                    assert (meta.partition, meta.offset) == (p, i)
        finally:
            await producer.stop()

        # -- consume everything in a group, commit only the first COMMIT_AT per partition
        consumer = _consumer(broker, GROUP)
        await consumer.start()
        try:
            records = await _consume(consumer, PARTITIONS * PER_PARTITION)
            assert sorted(r.value for r in records) == sorted(
                f"p{p}-m{i}".encode() for p in range(PARTITIONS) for i in range(PER_PARTITION)
            )
            tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
            await consumer.commit({tp: COMMIT_AT for tp in tps})
            assert [await consumer.committed(tp) for tp in tps] == [COMMIT_AT] * PARTITIONS
        finally:
            await consumer.stop()

        # -- restart: same port, same data dir
        t0 = time.monotonic()
        await broker.arestart(timeout=120)
        timings["restart"] = time.monotonic() - t0
        assert broker.bootstrap_servers == bootstrap

        # committed offsets survived: the group resumes at COMMIT_AT on every partition
        consumer = _consumer(broker, GROUP)
        await consumer.start()
        try:
            assert [await consumer.committed(TopicPartition(TOPIC, p)) for p in range(PARTITIONS)] == [
                COMMIT_AT
            ] * PARTITIONS
            rest = await _consume(consumer, PARTITIONS * (PER_PARTITION - COMMIT_AT))
            assert sorted((r.partition, r.offset, r.value) for r in rest) == [
                (p, i, f"p{p}-m{i}".encode())
                for p in range(PARTITIONS)
                for i in range(COMMIT_AT, PER_PARTITION)
            ]
            await consumer.commit()
            assert [await consumer.committed(TopicPartition(TOPIC, p)) for p in range(PARTITIONS)] == [
                PER_PARTITION
            ] * PARTITIONS
        finally:
            await consumer.stop()

        # all records survived: a fresh group reads every one of them from the start
        audit = _consumer(broker, "smoke-audit")
        await audit.start()
        try:
            everything = await _consume(audit, PARTITIONS * PER_PARTITION)
            assert len(everything) == PARTITIONS * PER_PARTITION
            assert {(r.partition, r.offset) for r in everything} == {
                (p, i) for p in range(PARTITIONS) for i in range(PER_PARTITION)
            }
        finally:
            await audit.stop()

        t0 = time.monotonic()
        await broker.astop()
        timings["stop"] = time.monotonic() - t0
        print(
            "\napache kafka smoke timings: "
            + ", ".join(f"{k} {v:.1f}s" for k, v in timings.items())
            + f" (bootstrap {bootstrap}, log {broker.log_path})"
        )
    finally:
        await broker.astop()
    assert not broker.is_running()
