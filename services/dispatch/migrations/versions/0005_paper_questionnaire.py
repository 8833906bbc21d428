"""dispatch: answer ids (an invitation number per invitation) and the rounds' questionnaires
for print (questionnaire.offered), for the paper questionnaire

``answer_seq`` numbers every invitation from a sequence, existing ones included; the answer id
printed on the paper questionnaire is derived from it (shared.answer_id), unique by construction.

Revision ID: d24p
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "d24p"
down_revision = "0006"
branch_labels = None
depends_on = None

SCHEMA = "dispatch"


def upgrade() -> None:
    op.execute(f"CREATE SEQUENCE {SCHEMA}.invitation_answer_seq MINVALUE 1 MAXVALUE 999999999 NO CYCLE")
    op.add_column(
        "invitation",
        sa.Column("answer_seq", sa.BigInteger, nullable=False,
                  server_default=sa.text(f"nextval('{SCHEMA}.invitation_answer_seq')")),
        schema=SCHEMA,
    )
    op.execute(f"ALTER SEQUENCE {SCHEMA}.invitation_answer_seq OWNED BY {SCHEMA}.invitation.answer_seq")
    op.create_unique_constraint("uq_invitation_answer_seq", "invitation", ["answer_seq"], schema=SCHEMA)
    op.create_table(
        "round_questionnaire",
        sa.Column("round_id", sa.Text, primary_key=True),
        sa.Column("offered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("questionnaires", JSONB, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("round_questionnaire", schema=SCHEMA)
    op.drop_constraint("uq_invitation_answer_seq", "invitation", schema=SCHEMA)
    op.drop_column("invitation", "answer_seq", schema=SCHEMA)
