"""sampling: the rounds as ingest defines them; forced draws and capped allocations recorded

``round_definition`` keeps the highest revision of each round's round.defined (sampling refuses
work for a round it has no definition of, and draws only when the round is ready). A draw forced
before the round was ready records who forced it and what was missing; an allocation records
where the operator's max_sample capped a municipality below the 200-answers rule.

Revision ID: 0008
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "round_definition",
        sa.Column("round_id", sa.Text, primary_key=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("phase", sa.Text, nullable=False),
        sa.Column("kommuner", sa.ARRAY(sa.Text), nullable=False),
        sa.Column("delivery_deadline", sa.DateTime(timezone=True)),
        sa.Column("definition", JSONB, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        schema="sampling",
    )
    op.add_column("draw", sa.Column("forced_by", sa.Text), schema="sampling")
    op.add_column("draw", sa.Column("readiness", JSONB), schema="sampling")
    op.add_column("round_allocation", sa.Column("cap_decisions", JSONB, nullable=False, server_default="[]"), schema="sampling")


def downgrade() -> None:
    op.drop_column("round_allocation", "cap_decisions", schema="sampling")
    op.drop_column("draw", "readiness", schema="sampling")
    op.drop_column("draw", "forced_by", schema="sampling")
    op.drop_table("round_definition", schema="sampling")
