"""responses: interviews by phone (the sealed numbers and the calls' outcomes)

Revision ID: r100
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "r100"
down_revision = "r24p"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "interview",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("round_id", sa.Text, nullable=False),
        sa.Column("pseudonym", sa.Text, nullable=False),
        sa.Column("kommunekode", sa.Text, nullable=False),
        sa.Column("phone", JSONB),
        sa.Column("outcome", sa.Text),
        sa.Column("call_back_at", sa.DateTime(timezone=True)),
        sa.Column("calls", sa.Integer, nullable=False, server_default="0"),
        sa.Column("claimed_by", sa.Text),
        sa.Column("claimed_until", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("round_id", "pseudonym", name="uq_interview_round_pseudonym"),
        sa.CheckConstraint("outcome IN ('refused', 'call_back', 'completed')", name="interview_outcome"),
        schema="responses",
    )
    op.create_index("ix_interview_round_kommune", "interview", ["round_id", "kommunekode"], schema="responses")
    # The interviewer's list joins a round's numbers to their links by pseudonym.
    op.create_index("ix_respondent_round_pseudonym", "respondent", ["round_id", "pseudonym"], schema="responses")


def downgrade() -> None:
    op.drop_index("ix_respondent_round_pseudonym", "respondent", schema="responses")
    op.drop_table("interview", schema="responses")
