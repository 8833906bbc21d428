"""ingest: the languages a round offers and the review status its translations need

``round_definition.languages`` (BCP 47 codes from ``shared.events.SURVEY_LANGUAGES``; empty:
every language) and ``translation_status`` (``draft`` or ``reviewed``), set by KL's operator on
``POST /rounds`` and ``PATCH /rounds/{id}`` and published on round.defined (docs/languages.md).
Existing rounds get the defaults round.defined already implied: every language, drafts allowed.

Revision ID: i097
"""

import sqlalchemy as sa
from alembic import op

revision = "i097"
down_revision = "i096"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("round_definition", sa.Column("languages", sa.ARRAY(sa.Text), nullable=False, server_default="{}"),
                  schema="ingest")
    op.add_column("round_definition", sa.Column("translation_status", sa.Text, nullable=False, server_default="draft"),
                  schema="ingest")
    op.create_check_constraint("ck_round_definition_translation_status", "round_definition",
                               "translation_status IN ('draft', 'reviewed')", schema="ingest")


def downgrade() -> None:
    op.drop_constraint("ck_round_definition_translation_status", "round_definition", schema="ingest")
    op.drop_column("round_definition", "translation_status", schema="ingest")
    op.drop_column("round_definition", "languages", schema="ingest")
