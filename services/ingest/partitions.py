"""Each delivery's citizens are one partition of ``ingest.citizen`` (LIST on delivery_id,
migration i093), created, loaded, indexed and attached in the delivery's transaction.

Why: a national delivery is a million citizens. COPYing them into a table whose primary key
already exists updates the B-tree a row at a time at random places (the pseudonym is a keyed
hash), ~7 CPU s of PostgreSQL per million; COPYing into a table without an index and building
the key afterwards with one sort costs ~2 (measured, bench/README.md). So the rows go into a
table of their own first, with a CHECK constraint that says which delivery it holds; the primary
key is built when all rows are in; ATTACH PARTITION then finds the matching index and the CHECK
and adopts both without scanning the rows again.

Nothing of this is visible before the delivery commits (DDL is transactional in PostgreSQL); a
rejected or failed delivery rolls the table back with everything else.

Locks: the load takes none on ``ingest.citizen``; ATTACH takes SHARE UPDATE EXCLUSIVE on it
(reads and writes of other partitions go on; another delivery's ATTACH waits for this commit),
so it runs last, just before the commit. Emptying a superseded delivery's partition (TRUNCATE)
locks that partition only.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

logger = logging.getLogger(__name__)

SCHEMA = "ingest"
PARENT = f"{SCHEMA}.citizen"


def citizens_of(deliveries: list[uuid.UUID], columns: str) -> str:
    """``SELECT columns`` of the deliveries' citizens. Their ids are written into the statement
    (UUIDs we hold, not input), so that PostgreSQL prunes ingest.citizen to their partitions
    when planning and locks no other."""
    ids = ", ".join(f"'{uuid.UUID(str(delivery))}'" for delivery in deliveries)
    return f"SELECT {columns} FROM {PARENT} WHERE delivery_id IN ({ids})"


def partition_name(delivery_id: uuid.UUID) -> str:
    """The table (in ``ingest``) holding a delivery's citizens."""
    return f"citizen_{delivery_id.hex}"


async def create_loading_table(connection, delivery_id: uuid.UUID) -> str:
    """A table for the delivery's citizens, shaped as ``ingest.citizen`` and without an index
    yet; returns its name (in ``ingest``). ``connection``: the delivery's asyncpg connection."""
    name = partition_name(delivery_id)
    await connection.execute(
        f"CREATE TABLE {SCHEMA}.{name} (LIKE {PARENT} INCLUDING DEFAULTS, "
        f"CONSTRAINT {name}_holds CHECK (delivery_id = '{delivery_id}'::uuid))"
    )
    return name


async def attach(connection, delivery_id: uuid.UUID, *, sort_memory: str = "256MB") -> None:
    """Build the loaded table's primary key (one sort, with ``sort_memory`` for it) and attach
    the table as the delivery's partition."""
    name = partition_name(delivery_id)
    await connection.execute(f"SET LOCAL maintenance_work_mem = '{sort_memory}'")
    await connection.execute(f"ALTER TABLE {SCHEMA}.{name} ADD CONSTRAINT pk_{name} PRIMARY KEY (pseudonym, delivery_id)")
    await connection.execute(f"ALTER TABLE {PARENT} ATTACH PARTITION {SCHEMA}.{name} FOR VALUES IN ('{delivery_id}')")
    # The partition constraint now says the same; the CHECK only served to skip ATTACH's scan.
    await connection.execute(f"ALTER TABLE {SCHEMA}.{name} DROP CONSTRAINT {name}_holds")


async def empty(connection, delivery_id: uuid.UUID) -> None:
    """Remove a delivery's citizens at once (TRUNCATE of its partition, if it has one)."""
    name = partition_name(delivery_id)
    if await connection.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{SCHEMA}.{name}"):
        await connection.execute(f"TRUNCATE {SCHEMA}.{name}")


# Partitions that hold nothing any more: superseded deliveries (emptied by the superseding
# delivery) and deliveries of purged rounds (emptied by the purge), once empty.
_DEAD_PARTITIONS = """
SELECT c.relname, i.inhdetachpending FROM pg_inherits i
  JOIN pg_class c ON c.oid = i.inhrelid
  JOIN ingest.delivery d ON c.relname = 'citizen_' || replace(d.id::text, '-', '')
 WHERE i.inhparent = 'ingest.citizen'::regclass
   AND (d.status = 'superseded'
        OR d.round_id IN (SELECT round_id FROM ingest.round_closure WHERE purge_requested_at IS NOT NULL))
"""


async def drop_dead_partitions(connection) -> list[str]:
    """Detach and drop the empty partitions of superseded deliveries and purged rounds, so they
    do not pile up round after round; returns the tables dropped.

    ``connection``: an asyncpg connection outside any transaction. DETACH ... CONCURRENTLY
    waits for the transactions using ``ingest.citizen`` instead of locking it against them (a
    plain DETACH or DROP takes ACCESS EXCLUSIVE on the parent, and every later reader would
    queue behind it while a national delivery runs); a detach that was interrupted is
    finished with FINALIZE. A partition that still holds rows (a purge not yet run) is left.
    """
    dropped = []
    for name, pending in await connection.fetch(_DEAD_PARTITIONS):
        table = f"{SCHEMA}.{name}"
        if not pending and await connection.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})"):
            continue
        await connection.execute(f"ALTER TABLE {PARENT} DETACH PARTITION {table} {'FINALIZE' if pending else 'CONCURRENTLY'}")
        await connection.execute(f"DROP TABLE {table}")
        dropped.append(name)
    return dropped


async def run_partition_cleanup(runtime) -> None:
    """Background worker: :func:`drop_dead_partitions` every ``partition_cleanup_interval_seconds``."""
    while True:
        async with runtime.engine.connect() as connection:
            raw = (await connection.get_raw_connection()).driver_connection
            dropped = await drop_dead_partitions(raw)
        if dropped:
            logger.info("dropped emptied citizen partitions", extra={"fields": {"partitions": len(dropped)}})
        await asyncio.sleep(runtime.settings.partition_cleanup_interval_seconds)
