"""responses: a link's answer id (printed on the paper questionnaire), the key of the paper entry

Revision ID: r24p
"""

import sqlalchemy as sa
from alembic import op

revision = "r24p"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("respondent", sa.Column("answer_id", sa.Text), schema="responses")
    op.create_index("uq_respondent_answer_id", "respondent", ["answer_id"], unique=True, schema="responses")


def downgrade() -> None:
    op.drop_index("uq_respondent_answer_id", "respondent", schema="responses")
    op.drop_column("respondent", "answer_id", schema="responses")
