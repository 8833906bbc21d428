"""Migration 0007 on a real PostgreSQL: the frame loses its sealed contacts and keeps everything
the draw reads; a downgrade brings the column back empty (the contacts cannot come back)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import asyncpg
import sqlalchemy as sa
from alembic import command

from shared.db import alembic_config, make_engine, migrate, to_plain_url

MIGRATIONS = Path(__file__).resolve().parents[3] / "services" / "sampling" / "migrations"
CONTACT = {"key_id": "contact-1", "nonce": "bm9uY2Vub25jZQ==", "ciphertext": "c2VhbGVkIGNvbnRhY3Q="}
UNIT_COLUMNS = "pseudonym, maalgruppe, gender, age_band, duration_band, forskerbeskyttet, deceased, emigrated"


async def _contact_column(connection) -> asyncpg.Record | None:
    return await connection.fetchrow(
        """SELECT data_type, is_nullable FROM information_schema.columns
           WHERE table_schema = 'sampling' AND table_name = 'frame_unit' AND column_name = 'contact'"""
    )


async def test_0007_drops_the_frames_contacts_and_a_downgrade_cannot_restore_them(database_url):
    engine = make_engine(database_url)
    delivery_id = uuid.uuid4()
    try:
        await migrate(engine, MIGRATIONS, "sampling", "0006")
        connection = await asyncpg.connect(to_plain_url(database_url))
        try:
            # A frame as the v1 handler stored it: every unit with its sealed contact.
            await connection.execute(
                """INSERT INTO sampling.frame_delivery (delivery_id, round_id, kommunekode, reference_date,
                   chunks_received, chunk_count, person_count, complete, active)
                   VALUES ($1, 'r', '101', '2025-08-01', 1, 1, 3, true, true)""",
                delivery_id,
            )
            units = [(f"{n:064x}", "dagpenge", "K", "30-39", "0-3 mdr", n == 1, False, False) for n in range(3)]
            await connection.executemany(
                f"INSERT INTO sampling.frame_unit (delivery_id, {UNIT_COLUMNS}, contact) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                [(delivery_id, *u, json.dumps(CONTACT)) for u in units],
            )

            await migrate(engine, MIGRATIONS, "sampling", "0007")
            assert await _contact_column(connection) is None
            # Everything the draw reads is still there, unchanged.
            assert {tuple(r) for r in await connection.fetch(f"SELECT {UNIT_COLUMNS} FROM sampling.frame_unit")} == set(units)

            async with engine.begin() as conn:
                cfg = alembic_config(MIGRATIONS, "sampling")

                def downgrade(sync_connection) -> None:
                    cfg.attributes["connection"] = sync_connection
                    command.downgrade(cfg, "0006")

                await conn.run_sync(downgrade)
            # The column is back for the old code, nullable and empty: nothing restores a contact.
            assert tuple(await _contact_column(connection)) == ("jsonb", "YES")
            assert await connection.fetchval("SELECT count(*) FROM sampling.frame_unit WHERE contact IS NOT NULL") == 0
            assert await connection.fetchval("SELECT count(*) FROM sampling.frame_unit") == len(units)

            # And up again to head.
            await migrate(engine, MIGRATIONS, "sampling")
            assert await _contact_column(connection) is None
        finally:
            await connection.close()
        async with engine.connect() as conn:
            assert await conn.scalar(sa.text("SELECT version_num FROM sampling.alembic_version")) == "0009"  # head
    finally:
        await engine.dispose()
