"""analytics: the round overview's snapshots (services.analytics.overview): the round's
definition, its accepted deliveries, and sampling's and dispatch's latest counts

Revision ID: a093
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "a093"
down_revision = "a092"
branch_labels = None
depends_on = None

SCHEMA = "analytics"


def upgrade() -> None:
    op.create_table(
        "overview_round",
        sa.Column("round_id", sa.Text, primary_key=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("phase", sa.Text, nullable=False),
        sa.Column("definition", JSONB, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "overview_delivery",
        sa.Column("delivery_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("round_id", sa.Text, nullable=False),
        sa.Column("kommunekode", sa.Text, nullable=False),
        sa.Column("supersedes", UUID(as_uuid=True), nullable=True),
        sa.Column("delivered_by", sa.Text, nullable=False),
        sa.Column("rows_read", sa.Integer, nullable=False),
        sa.Column("rows_valid", sa.Integer, nullable=False),
        sa.Column("rows_rejected", sa.Integer, nullable=False),
        sa.Column("rows_excluded", sa.Integer, nullable=False),
        sa.Column("exclusions", JSONB, nullable=False),
        sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index("ix_overview_delivery_round", "overview_delivery", ["round_id", "kommunekode"], schema=SCHEMA)
    op.create_table(
        "overview_snapshot",
        sa.Column("round_id", sa.Text, primary_key=True),
        sa.Column("source", sa.Text, primary_key=True),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("snapshot", JSONB, nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("overview_snapshot", schema=SCHEMA)
    op.drop_index("ix_overview_delivery_round", table_name="overview_delivery", schema=SCHEMA)
    op.drop_table("overview_delivery", schema=SCHEMA)
    op.drop_table("overview_round", schema=SCHEMA)
