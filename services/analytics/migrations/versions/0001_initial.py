"""analytics: frame, invited, response facts, bus tables

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

SCHEMA = "analytics"


def upgrade() -> None:
    create_bus_tables(SCHEMA)
    op.create_table(
        "stratum_frame",
        sa.Column("round_id", sa.Text, primary_key=True),
        sa.Column("stratum", sa.Text, primary_key=True),
        sa.Column("kommunekode", sa.Text, nullable=False),
        sa.Column("maalgruppe", sa.Text, nullable=False),
        sa.Column("population", sa.Integer, nullable=False),
        sa.Column("sample", sa.Integer, nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "invited",
        sa.Column("round_id", sa.Text, primary_key=True),
        sa.Column("pseudonym", sa.Text, primary_key=True),
        sa.Column("kommunekode", sa.Text, nullable=False),
        sa.Column("stratum", sa.Text, nullable=False),
        sa.Column("arm", sa.Text),
        sa.Column("first_sent_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "response_fact",
        sa.Column("round_id", sa.Text, primary_key=True),
        sa.Column("pseudonym", sa.Text, primary_key=True),
        sa.Column("kommunekode", sa.Text, nullable=False),
        sa.Column("stratum", sa.Text, nullable=False),
        sa.Column("maalgruppe", sa.Text, nullable=False),
        sa.Column("gender", sa.String(1), nullable=False),
        sa.Column("age_band", sa.Text, nullable=False),
        sa.Column("duration_band", sa.Text, nullable=False),
        sa.Column("design_weight", sa.Float, nullable=False),
        sa.Column("arm", sa.Text),
        sa.Column("mode", sa.Text, nullable=False),
        sa.Column("questionnaire_id", sa.Text, nullable=False),
        sa.Column("questionnaire_version", sa.Integer, nullable=False),
        sa.Column("answers", JSONB, nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_index("ix_response_fact_round_kommune", "response_fact", ["round_id", "kommunekode"], schema=SCHEMA)


def downgrade() -> None:
    for table in ("response_fact", "invited", "stratum_frame", "processed_event", "outbox"):
        op.drop_table(table, schema=SCHEMA)
