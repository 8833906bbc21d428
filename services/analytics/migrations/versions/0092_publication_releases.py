"""analytics: publications are releases, kept per round and numbered (see service.Releases)

Revision ID: a092
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import BYTEA, JSONB

revision = "a092"
down_revision = "a091"
branch_labels = None
depends_on = None

SCHEMA = "analytics"


def upgrade() -> None:
    op.create_table(
        "publication_release",
        sa.Column("round_id", sa.Text, primary_key=True),
        sa.Column("release", sa.Integer, primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("phase", sa.Text, nullable=False),
        sa.Column("built_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("publication", BYTEA, nullable=False),
        # The publication classes' layout the pickle was written with (service.LAYOUT).
        sa.Column("layout", sa.Text, nullable=False),
        sa.Column("baseline", JSONB, nullable=True),
        sa.CheckConstraint("phase IN ('preliminary', 'final')", name="publication_release_phase"),
        sa.CheckConstraint("release > 0", name="publication_release_number"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("publication_release", schema=SCHEMA)
