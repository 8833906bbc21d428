"""A bus participant run as its own process, so tests can SIGKILL it mid-stream.

  python tests/bus/bus_process.py consume   -- consume into the effect table forever
  python tests/bus/bus_process.py produce N -- commit N events (10 per transaction) through the outbox
Environment: DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS, KAFKA_TOPIC_PREFIX.
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import sqlalchemy as sa  # noqa: E402
from harness import BUS, consumer, create_schema, event, produced, uow_factory  # noqa: E402

from shared.bus import OutboxRelay, make_producer  # noqa: E402
from shared.db import make_engine  # noqa: E402


async def consume() -> None:
    engine = make_engine(os.environ["DATABASE_URL"])
    producer = make_producer(os.environ["KAFKA_BOOTSTRAP_SERVERS"], "bustest-dlq")
    await producer.start()
    worker = consumer(os.environ["KAFKA_BOOTSTRAP_SERVERS"], os.environ["KAFKA_TOPIC_PREFIX"], engine, producer, max_records=50)
    await worker.start()
    print("ready", flush=True)
    await worker.run()


async def produce(total: int) -> None:
    engine = make_engine(os.environ["DATABASE_URL"])
    await create_schema(engine)
    producer = make_producer(os.environ["KAFKA_BOOTSTRAP_SERVERS"], "bustest-producer")
    await producer.start()
    relay = OutboxRelay(engine, BUS, producer, service="bustest", topic_prefix=os.environ["KAFKA_TOPIC_PREFIX"], batch_size=50, poll_interval=0.05)
    relay_task = asyncio.create_task(relay.run())
    make_uow = uow_factory(engine, on_commit=relay.nudge)
    async with engine.connect() as conn:
        already = await conn.scalar(sa.select(sa.func.count()).select_from(produced))
    print("ready", flush=True)
    for start in range(already, total, 10):
        async with make_uow() as uow:
            for i in range(start, min(start + 10, total)):
                envelope = uow.publish(event(i))
                await uow.session.execute(sa.insert(produced).values(event_id=envelope.event_id))
            await uow.commit()
    while await relay.backlog():
        await asyncio.sleep(0.05)
    print("done", flush=True)
    relay_task.cancel()
    await producer.stop()


if __name__ == "__main__":
    if sys.argv[1] == "consume":
        asyncio.run(consume())
    else:
        asyncio.run(produce(int(sys.argv[2])))
