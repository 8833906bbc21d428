"""Bus benchmark: events through the transactional outbox, the relay, the broker and the
idempotent consumer, with end-to-end latency (commit of the producing transaction -> commit of
the consuming transaction).

  .venv/bin/python bench/bus_throughput.py --broker tansu --events 20000            # burst: throughput
  .venv/bin/python bench/bus_throughput.py --broker tansu --events 10000 --rate 500 # paced: latency
  .venv/bin/python bench/bus_throughput.py --broker kafka ...

Starts embedded PostgreSQL and the chosen broker itself (or uses DATABASE_URL /
KAFKA_BOOTSTRAP_SERVERS when set). Prints its figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sqlalchemy as sa  # noqa: E402

from shared.bus import IdempotentConsumer, OutboxRelay, UnitOfWork, bus_tables, ensure_topics, make_producer, topic_name  # noqa: E402
from shared.db import make_engine, make_sessionmaker  # noqa: E402
from shared.events import InvitationSent  # noqa: E402
from shared.testing.local_infra import local_infra  # noqa: E402

SCHEMA = "bench"
metadata = sa.MetaData(schema=SCHEMA)
BUS = bus_tables(metadata)
latency = sa.Table("latency", metadata, sa.Column("event_id", sa.Uuid, primary_key=True), sa.Column("seconds", sa.Float))


def event(i: int) -> InvitationSent:
    return InvitationSent(
        round_id="bench", kommunekode=str(101 + i % 98), pseudonym=f"p{i:08d}", step="invitation",
        channel="dev_sink", maalgruppe="dagpenge", stratum="101:dagpenge", sent_at=datetime.now(UTC),
    )


async def run(bootstrap: str, database_url: str, events: int, per_transaction: int, rate: float | None) -> dict:
    engine = make_engine(database_url, pool_size=20)
    async with engine.begin() as conn:
        await conn.execute(sa.text(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}"))
        await conn.run_sync(metadata.create_all)
    prefix = f"bench{int(time.time())}."
    await ensure_topics(bootstrap, [topic_name(prefix, InvitationSent.topic)], partitions=6)
    producer = make_producer(bootstrap, "bench")
    await producer.start()
    relay = OutboxRelay(engine, BUS, producer, service="bench", topic_prefix=prefix, batch_size=500, poll_interval=0.02)
    sessionmaker = make_sessionmaker(engine)

    def uow() -> UnitOfWork:
        return UnitOfWork(sessionmaker, BUS, source="bench", on_commit=relay.nudge)

    async def handle(uow: UnitOfWork, envelope, payload) -> None:
        # occurred_at is stamped when the event is created inside the producing transaction.
        seconds = (datetime.now(UTC) - envelope.occurred_at).total_seconds()
        await uow.session.execute(sa.insert(latency).values(event_id=envelope.event_id, seconds=seconds))

    consumer = IdempotentConsumer(
        service="bench", bootstrap_servers=bootstrap, topic_prefix=prefix, handlers={"invitation.sent": handle},
        uow_factory=uow, tables=BUS, dead_letter_producer=producer, max_records=500,
        session_timeout_ms=6000, heartbeat_interval_ms=1000,
    )
    await consumer.start()
    tasks = [asyncio.create_task(relay.run()), asyncio.create_task(consumer.run())]
    # Let the consumer join its group before the clock starts.
    while not consumer._consumer.assignment():
        await asyncio.sleep(0.1)

    started = time.perf_counter()
    for start in range(0, events, per_transaction):
        if rate:  # paced: latency below capacity, not the queue a burst builds up
            await asyncio.sleep(max(0.0, started + start / rate - time.perf_counter()))
        async with uow() as work:
            for i in range(start, min(start + per_transaction, events)):
                work.publish(event(i))
            await work.commit()
    produced_in = time.perf_counter() - started

    async with engine.connect() as conn:
        while (await conn.scalar(sa.select(sa.func.count()).select_from(latency))) < events:
            await asyncio.sleep(0.05)
    total = time.perf_counter() - started
    async with engine.connect() as conn:
        seconds = sorted((await conn.execute(sa.select(latency.c.seconds))).scalars())
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await consumer.stop()
    await producer.stop()
    await engine.dispose()
    return {
        "events": events,
        "outbox_commit_rate": events / produced_in,
        "end_to_end_rate": events / total,
        "p50_ms": 1000 * statistics.median(seconds),
        "p99_ms": 1000 * seconds[int(0.99 * (len(seconds) - 1))],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--broker", choices=["tansu", "kafka"], default="tansu")
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--per-transaction", type=int, default=50)
    parser.add_argument("--rate", type=float, default=None, help="events/s to pace the producer at (default: as fast as it can)")
    args = parser.parse_args()

    with local_infra(args.broker) as infra:
        figures = asyncio.run(run(infra.bootstrap_servers, infra.database_url, args.events, args.per_transaction, args.rate))
    print(f"broker={args.broker} events={figures['events']} per_transaction={args.per_transaction} rate={args.rate or 'burst'}")
    print(f"  committed into the outbox : {figures['outbox_commit_rate']:8.0f} events/s")
    print(f"  end to end (consumed)     : {figures['end_to_end_rate']:8.0f} events/s")
    print(f"  latency commit->consumed  : p50 {figures['p50_ms']:.1f} ms, p99 {figures['p99_ms']:.1f} ms")


if __name__ == "__main__":
    main()
