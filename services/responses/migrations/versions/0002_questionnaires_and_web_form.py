"""responses: questionnaire per round, local supplements, questionnaire key and paper mode

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "responses"


def upgrade() -> None:
    op.add_column("respondent", sa.Column("questionnaire_key", sa.Text), schema=SCHEMA)
    op.add_column("respondent", sa.Column("opened_at", sa.DateTime(timezone=True)), schema=SCHEMA)
    op.add_column("respondent", sa.Column("last_page", sa.Integer, nullable=False, server_default="0"), schema=SCHEMA)
    op.add_column("response", sa.Column("questionnaire_key", sa.Text), schema=SCHEMA)
    op.add_column("response", sa.Column("entered_by", sa.Text), schema=SCHEMA)
    op.create_table(
        "round_questionnaire",
        sa.Column("round_id", sa.Text, primary_key=True),
        sa.Column("core", sa.Text, nullable=False),
        sa.Column("modules", JSONB, nullable=False),
        sa.Column("supplements", JSONB, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "local_supplement",
        sa.Column("kommunekode", sa.Text, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("definition", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("local_supplement", schema=SCHEMA)
    op.drop_table("round_questionnaire", schema=SCHEMA)
    for table, column in (("response", "entered_by"), ("response", "questionnaire_key"), ("respondent", "last_page"),
                          ("respondent", "opened_at"), ("respondent", "questionnaire_key")):
        op.drop_column(table, column, schema=SCHEMA)
