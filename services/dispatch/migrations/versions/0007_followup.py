"""dispatch: the adaptive follow-up rule per round and each citizen's follow-up arm

``invitation.followup_arm`` is nullable without a default: adding it rewrites no row.

Revision ID: d25f
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "d25f"
down_revision = "d24p"
branch_labels = None
depends_on = None

SCHEMA = "dispatch"


def upgrade() -> None:
    op.add_column("invitation", sa.Column("followup_arm", sa.Text), schema=SCHEMA)
    op.create_table(
        "followup_rule",
        sa.Column("round_id", sa.Text, primary_key=True),
        sa.Column("rule", JSONB, nullable=False),
        sa.Column("set_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True)),
        sa.Column("counts", JSONB),
        sa.Column("cells", JSONB),
        sa.Column("arms", JSONB),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("followup_rule", schema=SCHEMA)
    op.drop_column("invitation", "followup_arm", schema=SCHEMA)
