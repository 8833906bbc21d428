"""analytics: municipalities' targets shown on the dashboard (e.g. q13 mean at least 4.2)

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = "analytics"


def upgrade() -> None:
    op.create_table(
        "dashboard_target",
        sa.Column("kommunekode", sa.Text, primary_key=True),
        sa.Column("question", sa.Text, primary_key=True),
        sa.Column("indicator", sa.Text, primary_key=True),  # "mean" (1..5) or "top2_share" (0..1)
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("set_by", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint("indicator IN ('mean', 'top2_share')", name="dashboard_target_indicator"),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("dashboard_target", schema=SCHEMA)
