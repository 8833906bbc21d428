"""Migration i093 on a real PostgreSQL: citizens stored before it move into one partition per
delivery, unchanged, and a downgrade puts them back into one table."""

from __future__ import annotations

import uuid
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
from alembic import command

from shared.db import alembic_config, make_engine, migrate, to_plain_url

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "ingest" / "migrations"


def _citizen(delivery_id: uuid.UUID, n: int) -> tuple:
    return (delivery_id, f"{n:064x}", bytes([n % 256]) * 38, "cpr-1", "A", "dagpenge", "K", "30-39", "12-24")


async def _rows(connection) -> set[tuple]:
    return {tuple(r) for r in await connection.fetch("SELECT * FROM ingest.citizen")}


async def test_citizens_move_into_partitions_and_back(database_url):
    engine = make_engine(database_url)
    accepted, superseded, empty_accepted = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    try:
        await migrate(engine, MIGRATIONS, "ingest", "i092")
        connection = await asyncpg.connect(to_plain_url(database_url))
        try:
            for delivery_id, status in ((accepted, "accepted"), (superseded, "superseded"), (empty_accepted, "accepted")):
                await connection.execute(
                    """INSERT INTO ingest.delivery (id, round_id, kommunekode, delivered_by, reference_date, status,
                       rows_read, rows_valid, rows_rejected, rows_excluded, report)
                       VALUES ($1, 'r', '101', 'test', '2026-01-01', $2, 0, 0, 0, 0, '{}')""",
                    delivery_id, status,
                )
            # A superseded delivery's rows were deleted before i093; one left behind still moves.
            before = [_citizen(accepted, n) for n in range(5)] + [_citizen(superseded, n) for n in range(2)]
            await connection.copy_records_to_table("citizen", schema_name="ingest", records=before)

            await migrate(engine, MIGRATIONS, "ingest", "i093")
            assert await _rows(connection) == set(before)
            bounds = {
                r["relname"]: r["bound"]
                for r in await connection.fetch(
                    """SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i
                        JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'ingest.citizen'::regclass"""
                )
            }
            assert bounds == {f"citizen_{d.hex}": f"FOR VALUES IN ('{d}')" for d in (accepted, superseded, empty_accepted)}
            assert await connection.fetchval(f"SELECT count(*) FROM ingest.citizen_{accepted.hex}") == 5
            # The key still refuses a person twice in one delivery.
            duplicate = _citizen(accepted, 3)
            with pytest.raises(asyncpg.UniqueViolationError):
                await connection.copy_records_to_table("citizen", schema_name="ingest", records=[duplicate])

            async with engine.begin() as conn:
                cfg = alembic_config(MIGRATIONS, "ingest")

                def downgrade(sync_connection) -> None:
                    cfg.attributes["connection"] = sync_connection
                    command.downgrade(cfg, "i092")

                await conn.run_sync(downgrade)
            assert await _rows(connection) == set(before)
            kind = await connection.fetchval("SELECT relkind::text FROM pg_class WHERE oid = 'ingest.citizen'::regclass")
            assert kind == "r"  # a plain table again
            assert not await connection.fetchval(f"SELECT to_regclass('ingest.citizen_{accepted.hex}') IS NOT NULL")
        finally:
            await connection.close()
        async with engine.connect() as conn:
            assert await conn.scalar(sa.text("SELECT version_num FROM ingest.alembic_version")) == "i092"
    finally:
        await engine.dispose()
