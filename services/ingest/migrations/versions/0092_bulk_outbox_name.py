"""ingest: the population outbox takes the shared bulk outbox's name

Migration i091 gave ingest a text outbox for population.received chunks; it is now the shared
bulk outbox (shared.bus), which every service that has one calls ``bulk_outbox``. Same columns.

Revision ID: i092
"""

from alembic import op

revision = "i092"
down_revision = "i091"
branch_labels = None
depends_on = None

SCHEMA = "ingest"


def upgrade() -> None:
    op.rename_table("population_outbox", "bulk_outbox", schema=SCHEMA)


def downgrade() -> None:
    op.rename_table("bulk_outbox", "population_outbox", schema=SCHEMA)
