"""sampling: frame, draws, bus tables

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

SCHEMA = "sampling"


def upgrade() -> None:
    create_bus_tables(SCHEMA)
    op.create_table(
        "frame_delivery",
        sa.Column("delivery_id", sa.Uuid, primary_key=True),
        sa.Column("round_id", sa.Text, nullable=False),
        sa.Column("kommunekode", sa.Text, nullable=False),
        sa.Column("reference_date", sa.Date, nullable=False),
        sa.Column("chunks_received", sa.Integer, nullable=False),
        sa.Column("chunk_count", sa.Integer),
        sa.Column("person_count", sa.Integer),
        sa.Column("complete", sa.Boolean, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=SCHEMA,
    )
    op.create_index("ix_frame_delivery_round_kommune", "frame_delivery", ["round_id", "kommunekode"], schema=SCHEMA)
    op.create_table(
        "frame_unit",
        sa.Column("delivery_id", sa.Uuid, sa.ForeignKey(f"{SCHEMA}.frame_delivery.delivery_id", ondelete="CASCADE"), primary_key=True),
        sa.Column("pseudonym", sa.Text, primary_key=True),
        sa.Column("maalgruppe", sa.Text, nullable=False),
        sa.Column("gender", sa.String(1), nullable=False),
        sa.Column("age_band", sa.Text, nullable=False),
        sa.Column("duration_band", sa.Text, nullable=False),
        sa.Column("forskerbeskyttet", sa.Boolean, nullable=False),
        sa.Column("contact", JSONB, nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "draw",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("round_id", sa.Text, nullable=False, unique=True),
        sa.Column("seed", sa.BigInteger, nullable=False),
        sa.Column("drawn_by", sa.Text, nullable=False),
        sa.Column("allocation", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "sampled_unit",
        sa.Column("draw_id", sa.Uuid, sa.ForeignKey(f"{SCHEMA}.draw.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("pseudonym", sa.Text, primary_key=True),
        sa.Column("kommunekode", sa.Text, nullable=False),
        sa.Column("stratum", sa.Text, nullable=False),
        sa.Column("inclusion_probability", sa.Float, nullable=False),
        sa.Column("design_weight", sa.Float, nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    for table in ("sampled_unit", "draw", "frame_unit", "frame_delivery", "processed_event", "outbox"):
        op.drop_table(table, schema=SCHEMA)
