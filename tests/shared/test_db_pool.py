"""The engines' pool against a real PostgreSQL: a connection the server closed is never handed
out (shared.db.make_engine checks at checkout, without a round trip)."""

from __future__ import annotations

import asyncio

import asyncpg
import sqlalchemy as sa

from shared.db import make_engine, to_plain_url


async def _backend_pid(engine) -> int:
    async with engine.connect() as connection:
        return await connection.scalar(sa.text("SELECT pg_backend_pid()"))


async def test_a_connection_the_server_closed_is_replaced_at_checkout(database_url):
    engine = make_engine(database_url, pool_size=1, max_overflow=0)
    try:
        first = await _backend_pid(engine)
        assert await _backend_pid(engine) == first  # the pool reuses its one connection

        async with engine.connect() as connection:
            raw = await connection.get_raw_connection()
            pooled = raw.driver_connection
        admin = await asyncpg.connect(to_plain_url(database_url))
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
        finally:
            await admin.close()
        async with asyncio.timeout(10):  # the idle connection's reader sees the server hang up
            while not pooled.is_closed():
                await asyncio.sleep(0.01)

        # Without the checkout check this statement would run on the dead connection and fail.
        replacement = await _backend_pid(engine)
        assert replacement != first
        assert await _backend_pid(engine) == replacement
    finally:
        await engine.dispose()

