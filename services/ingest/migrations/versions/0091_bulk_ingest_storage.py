"""ingest: storage for national deliveries (citizen keys compared bytewise, a text outbox for population chunks)

A national delivery COPYs a million citizens and writes ~400 MB of population.received JSON
in one transaction; the storage decides much of its time (bench/README.md):

- citizen: the pseudonym (64 hex digits) is compared bytewise (COLLATE "C") and leads the
  primary key, which then also serves lookups by pseudonym (cross-delivery duplicates,
  erasure), so the separate pseudonym index goes; an index on delivery_id serves superseding
  and purging a delivery (cheap: one value per delivery, deduplicated by the B-tree). One random
  B-tree instead of two, without locale-aware comparisons: about 2x faster COPY.
- citizen.delivery_id loses its foreign key: PostgreSQL checks a foreign key with a query per
  inserted row, which made the COPY another ~1.8x slower. Citizens are only ever written by
  ingest_delivery, after their delivery row and in its transaction, and deliveries are never
  deleted (superseding and purging delete the citizens by delivery_id), so the constraint
  guarded nothing the code does not already guarantee.
- population_outbox: the population.received chunks as the JSON text that is published, with
  the Kafka headers in columns and no compression (the ciphertexts do not compress), relayed
  without decoding (services.ingest.events.PopulationRelay). jsonb in the shared outbox was
  parsed on the way in, re-serialised on the way out and decoded and re-encoded by the relay.

Revision ID: i091
"""

import sqlalchemy as sa
from alembic import op

revision = "i091"
down_revision = "i090"
branch_labels = None
depends_on = None

SCHEMA = "ingest"
_DROP_CONSTRAINTS = """
DO $$
DECLARE name text;
BEGIN
    FOR name IN SELECT conname FROM pg_constraint WHERE conrelid = '{schema}.citizen'::regclass AND contype = '{kind}' LOOP
        EXECUTE format('ALTER TABLE {schema}.citizen DROP CONSTRAINT %I', name);
    END LOOP;
END $$
"""
_DROP_PRIMARY_KEY = _DROP_CONSTRAINTS.format(schema=SCHEMA, kind="p")
_DROP_FOREIGN_KEY = _DROP_CONSTRAINTS.format(schema=SCHEMA, kind="f")


def upgrade() -> None:
    op.execute(f'ALTER TABLE {SCHEMA}.citizen ALTER COLUMN pseudonym TYPE text COLLATE "C"')
    op.execute(_DROP_FOREIGN_KEY)
    op.execute(_DROP_PRIMARY_KEY)
    op.execute(f"ALTER TABLE {SCHEMA}.citizen ADD CONSTRAINT pk_citizen PRIMARY KEY (pseudonym, delivery_id)")
    op.drop_index("ix_citizen_pseudonym", table_name="citizen", schema=SCHEMA)
    op.create_index("ix_citizen_delivery", "citizen", ["delivery_id"], schema=SCHEMA)
    op.create_table(
        "population_outbox",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("event_id", sa.Uuid, nullable=False, unique=True),
        sa.Column("topic", sa.Text, nullable=False),
        sa.Column("key", sa.Text, nullable=False),
        sa.Column("event_type", sa.Text, nullable=False),
        sa.Column("event_version", sa.Integer, nullable=False),
        sa.Column("correlation_id", sa.Text, nullable=False),
        sa.Column("envelope", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=SCHEMA,
    )
    op.execute(f"ALTER TABLE {SCHEMA}.population_outbox ALTER COLUMN envelope SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.drop_table("population_outbox", schema=SCHEMA)
    op.drop_index("ix_citizen_delivery", table_name="citizen", schema=SCHEMA)
    op.create_index("ix_citizen_pseudonym", "citizen", ["pseudonym"], schema=SCHEMA)
    op.execute(_DROP_PRIMARY_KEY)
    op.execute(f"ALTER TABLE {SCHEMA}.citizen ADD CONSTRAINT pk_citizen PRIMARY KEY (delivery_id, pseudonym)")
    op.create_foreign_key(
        "fk_citizen_delivery_id_delivery", "citizen", "delivery", ["delivery_id"], ["id"],
        source_schema=SCHEMA, referent_schema=SCHEMA, ondelete="CASCADE",
    )
    op.execute(f'ALTER TABLE {SCHEMA}.citizen ALTER COLUMN pseudonym TYPE text COLLATE "default"')
