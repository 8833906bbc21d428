"""analytics: the citizens of each adaptive follow-up arm (dispatch's rule) and whether they
answered, for the response rates by follow-up arm

Revision ID: a101
"""

import sqlalchemy as sa
from alembic import op

revision = "a101"
down_revision = "a100"
branch_labels = None
depends_on = None

SCHEMA = "analytics"


def upgrade() -> None:
    op.create_table(
        "followup_invited",
        sa.Column("round_id", sa.Text, primary_key=True),
        sa.Column("pseudonym", sa.Text, primary_key=True),
        sa.Column("kommunekode", sa.Text, nullable=False),
        sa.Column("stratum", sa.Text, nullable=False),
        sa.Column("maalgruppe", sa.Text, nullable=False),
        sa.Column("followup_arm", sa.Text, nullable=False),
        sa.Column("first_sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered", sa.Boolean, nullable=False, server_default=sa.false()),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("followup_invited", schema=SCHEMA)
