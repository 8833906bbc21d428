"""ingest: one partition of ingest.citizen per delivery

A delivery's citizens are loaded into a table of their own, its primary key is built once they
are all in (a sort), and the table is attached as the delivery's partition, all in the
delivery's transaction (services.ingest.partitions). Inserting a million rows into the one
shared B-tree cost ~7 CPU s of random page updates; loading without an index and building it
afterwards costs ~2 (bench/README.md). A superseded delivery's partition is emptied with
TRUNCATE instead of a million-row DELETE. The delivery_id index goes: a partition is one
delivery.

Existing rows move into partitions, one per delivery that has citizens or is accepted.

Revision ID: i093
"""

from alembic import op

revision = "i093"
down_revision = "i092"
branch_labels = None
depends_on = None

SCHEMA = "ingest"

_MOVE_INTO_PARTITIONS = """
DO $$
DECLARE
    delivery uuid;
    name text;
BEGIN
    FOR delivery IN
        SELECT delivery_id FROM ingest.citizen_unpartitioned
        UNION SELECT id FROM ingest.delivery WHERE status = 'accepted'
    LOOP
        name := 'citizen_' || replace(delivery::text, '-', '');
        EXECUTE format('CREATE TABLE ingest.%I (LIKE ingest.citizen INCLUDING DEFAULTS)', name);
        EXECUTE format('INSERT INTO ingest.%I SELECT * FROM ingest.citizen_unpartitioned WHERE delivery_id = %L', name, delivery);
        EXECUTE format('ALTER TABLE ingest.%I ADD CONSTRAINT %I PRIMARY KEY (pseudonym, delivery_id)', name, 'pk_' || name);
        EXECUTE format('ALTER TABLE ingest.citizen ATTACH PARTITION ingest.%I FOR VALUES IN (%L)', name, delivery);
    END LOOP;
END $$
"""


def upgrade() -> None:
    op.execute(f"ALTER TABLE {SCHEMA}.citizen RENAME TO citizen_unpartitioned")
    op.execute(f"ALTER TABLE {SCHEMA}.citizen_unpartitioned RENAME CONSTRAINT pk_citizen TO pk_citizen_unpartitioned")
    op.execute(f"DROP INDEX {SCHEMA}.ix_citizen_delivery")
    op.execute(
        f"CREATE TABLE {SCHEMA}.citizen (LIKE {SCHEMA}.citizen_unpartitioned INCLUDING DEFAULTS) PARTITION BY LIST (delivery_id)"
    )
    op.execute(f"ALTER TABLE {SCHEMA}.citizen ADD CONSTRAINT pk_citizen PRIMARY KEY (pseudonym, delivery_id)")
    op.execute(_MOVE_INTO_PARTITIONS)
    op.execute(f"DROP TABLE {SCHEMA}.citizen_unpartitioned")


def downgrade() -> None:
    op.execute(f"CREATE TABLE {SCHEMA}.citizen_unpartitioned (LIKE {SCHEMA}.citizen INCLUDING DEFAULTS)")
    op.execute(f"INSERT INTO {SCHEMA}.citizen_unpartitioned SELECT * FROM {SCHEMA}.citizen")
    op.execute(f"DROP TABLE {SCHEMA}.citizen")  # and every partition with it
    op.execute(f"ALTER TABLE {SCHEMA}.citizen_unpartitioned RENAME TO citizen")
    op.execute(f"ALTER TABLE {SCHEMA}.citizen ADD CONSTRAINT pk_citizen PRIMARY KEY (pseudonym, delivery_id)")
    op.create_index("ix_citizen_delivery", "citizen", ["delivery_id"], schema=SCHEMA)
