"""The two tables every service keeps for the bus, inside its own schema."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB


@dataclass(frozen=True)
class BusTables:
    outbox: sa.Table
    processed_event: sa.Table
    # For a service whose events are big and many (population chunks, sample chunks): the
    # envelope as the JSON text that is published, headers in columns, so neither PostgreSQL
    # (jsonb) nor the relay parses hundreds of MB. Same guarantees as the outbox.
    bulk_outbox: sa.Table | None = None


def _identity_columns() -> list[sa.Column]:
    """What every outbox row starts with: its order, its event and where it goes."""
    return [
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("event_id", sa.Uuid, nullable=False, unique=True),
        sa.Column("topic", sa.Text, nullable=False),  # logical topic, without the deployment's prefix
        sa.Column("key", sa.Text, nullable=False),
    ]


def _outbox_columns() -> list[sa.Column]:
    return [
        *_identity_columns(),
        sa.Column("envelope", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


def _bulk_outbox_columns() -> list[sa.Column]:
    return [
        *_identity_columns(),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("event_version", sa.Integer, nullable=False),
        sa.Column("correlation_id", sa.Text, nullable=False),
        sa.Column("envelope", sa.Text, nullable=False),  # the envelope's JSON, exactly as published
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


def _processed_columns() -> list[sa.Column]:
    return [
        # One consumer group may be several processes; the key is per group.
        sa.Column("consumer", sa.Text, primary_key=True),
        sa.Column("event_id", sa.Uuid, primary_key=True),
        sa.Column("outcome", sa.Text, nullable=False),  # handled | dead_lettered
        sa.Column("processed_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    ]


def bus_tables(metadata: sa.MetaData, *, bulk_outbox: str | None = None) -> BusTables:
    """The service's bus tables; ``bulk_outbox`` names its bulk outbox, if it has one."""
    return BusTables(
        outbox=sa.Table("outbox", metadata, *_outbox_columns()),
        processed_event=sa.Table("processed_event", metadata, *_processed_columns()),
        bulk_outbox=sa.Table(bulk_outbox, metadata, *_bulk_outbox_columns()) if bulk_outbox else None,
    )


def create_bus_tables(schema: str) -> None:
    """For a service's first Alembic migration."""
    from alembic import op

    op.create_table("outbox", *_outbox_columns(), schema=schema)
    op.create_table("processed_event", *_processed_columns(), schema=schema)


def create_bulk_outbox_table(schema: str, name: str = "bulk_outbox") -> None:
    """For the Alembic migration that gives a service its bulk outbox."""
    from alembic import op

    op.create_table(name, *_bulk_outbox_columns(), schema=schema)
    # Random ciphertexts and pseudonyms do not compress: do not try (pglz is slow).
    op.execute(f"ALTER TABLE {schema}.{name} ALTER COLUMN envelope SET STORAGE EXTERNAL")
