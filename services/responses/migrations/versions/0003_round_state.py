"""responses: rounds' definitions (round.defined), so a link closes when its round's fieldwork ends

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "r090"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "round_state",
        sa.Column("round_id", sa.Text, primary_key=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("phase", sa.Text, nullable=False),
        sa.Column("fieldwork_ends_at", sa.DateTime(timezone=True)),
        sa.Column("definition", JSONB, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema="responses",
    )


def downgrade() -> None:
    op.drop_table("round_state", schema="responses")
