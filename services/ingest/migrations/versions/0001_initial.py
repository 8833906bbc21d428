"""ingest: deliveries, citizens, bus tables

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from shared.bus import create_bus_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "ingest"


def upgrade() -> None:
    create_bus_tables(SCHEMA)
    op.create_table(
        "delivery",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("round_id", sa.Text, nullable=False),
        sa.Column("kommunekode", sa.Text, nullable=False),
        sa.Column("delivered_by", sa.Text, nullable=False),
        sa.Column("reference_date", sa.Date, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("rows_read", sa.Integer, nullable=False),
        sa.Column("rows_valid", sa.Integer, nullable=False),
        sa.Column("rows_rejected", sa.Integer, nullable=False),
        sa.Column("rows_excluded", sa.Integer, nullable=False),
        sa.Column("report", JSONB, nullable=False),
        sa.Column("supersedes", sa.Uuid, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=SCHEMA,
    )
    op.create_index("ix_delivery_round_kommune", "delivery", ["round_id", "kommunekode"], schema=SCHEMA)
    op.create_table(
        "citizen",
        sa.Column("delivery_id", sa.Uuid, sa.ForeignKey(f"{SCHEMA}.delivery.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("pseudonym", sa.Text, primary_key=True),
        sa.Column("cpr_ciphertext", sa.LargeBinary, nullable=False),
        sa.Column("cpr_key_id", sa.Text, nullable=False),
        sa.Column("maalgruppe", sa.Text, nullable=False),
        sa.Column("ydelse", sa.Text, nullable=False),
        sa.Column("gender", sa.String(1), nullable=False),
        sa.Column("age_band", sa.Text, nullable=False),
        sa.Column("duration_band", sa.Text, nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("citizen", schema=SCHEMA)
    op.drop_table("delivery", schema=SCHEMA)
    op.drop_table("processed_event", schema=SCHEMA)
    op.drop_table("outbox", schema=SCHEMA)
