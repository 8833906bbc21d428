"""responses: respondents, responses, bus tables

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

SCHEMA = "responses"


def upgrade() -> None:
    create_bus_tables(SCHEMA)
    op.create_table(
        "respondent",
        sa.Column("token_hash", sa.Text, primary_key=True),
        sa.Column("round_id", sa.Text, nullable=False),
        sa.Column("kommunekode", sa.Text, nullable=False),
        sa.Column("pseudonym", sa.Text, nullable=False),
        sa.Column("maalgruppe", sa.Text, nullable=False),
        sa.Column("stratum", sa.Text, nullable=False),
        sa.Column("gender", sa.String(1), nullable=False),
        sa.Column("age_band", sa.Text, nullable=False),
        sa.Column("duration_band", sa.Text, nullable=False),
        sa.Column("design_weight", sa.Float, nullable=False),
        sa.Column("arm", sa.Text),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("draft", JSONB, nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        schema=SCHEMA,
    )
    op.create_table(
        "response",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("token_hash", sa.Text, sa.ForeignKey(f"{SCHEMA}.respondent.token_hash", ondelete="CASCADE"), nullable=False, unique=True),
        sa.Column("questionnaire_id", sa.Text, nullable=False),
        sa.Column("questionnaire_version", sa.Integer, nullable=False),
        sa.Column("mode", sa.Text, nullable=False),
        sa.Column("answers", JSONB, nullable=False),
        sa.Column("submitted_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    for table in ("response", "respondent", "processed_event", "outbox"):
        op.drop_table(table, schema=SCHEMA)
