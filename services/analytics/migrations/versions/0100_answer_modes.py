"""analytics: the mode (web, paper, phone) and the language of every answer, and the response
rates by them (rate_tally keyed by mode and language as well; the invited on the rows without)

Revision ID: a100
"""

import sqlalchemy as sa
from alembic import op

revision = "a100"
down_revision = "a096"
branch_labels = None
depends_on = None

SCHEMA = "analytics"


def upgrade() -> None:
    op.add_column("response_fact", sa.Column("language", sa.Text, nullable=False, server_default="da"), schema=SCHEMA)
    op.add_column("rate_tally", sa.Column("mode", sa.Text, nullable=False, server_default=""), schema=SCHEMA)
    op.add_column("rate_tally", sa.Column("language", sa.Text, nullable=False, server_default=""), schema=SCHEMA)
    op.execute(
        f"""
        DO $$
        DECLARE c text;
        BEGIN
            SELECT conname INTO c FROM pg_constraint WHERE conrelid = '{SCHEMA}.rate_tally'::regclass AND contype = 'p';
            EXECUTE format('ALTER TABLE {SCHEMA}.rate_tally DROP CONSTRAINT %I', c);
        END $$
        """
    )
    op.create_primary_key("rate_tally_pkey", "rate_tally", ["round_id", "stratum", "arm", "mode", "language"], schema=SCHEMA)
    # The answered so far move to the rows of their mode and language, counted from the facts
    # (the tallies count exactly the facts: handlers.py, privacy.py).
    op.execute(f"UPDATE {SCHEMA}.rate_tally SET answered = 0")
    op.execute(
        f"""
        INSERT INTO {SCHEMA}.rate_tally (round_id, stratum, arm, mode, language, kommunekode, maalgruppe, invited, answered)
        SELECT round_id, stratum, coalesce(arm, 'none'), mode, language, min(kommunekode), min(maalgruppe), 0, count(*)
          FROM {SCHEMA}.response_fact
         GROUP BY round_id, stratum, coalesce(arm, 'none'), mode, language
        """
    )


def downgrade() -> None:
    op.execute(
        f"""
        CREATE TEMP TABLE merged AS
        SELECT round_id, stratum, arm, min(kommunekode) AS kommunekode, min(maalgruppe) AS maalgruppe,
               sum(invited) AS invited, sum(answered) AS answered
          FROM {SCHEMA}.rate_tally GROUP BY round_id, stratum, arm
        """
    )
    op.execute(f"DELETE FROM {SCHEMA}.rate_tally")
    op.drop_constraint("rate_tally_pkey", "rate_tally", schema=SCHEMA)
    op.drop_column("rate_tally", "language", schema=SCHEMA)
    op.drop_column("rate_tally", "mode", schema=SCHEMA)
    op.create_primary_key("rate_tally_pkey", "rate_tally", ["round_id", "stratum", "arm"], schema=SCHEMA)
    op.execute(f"INSERT INTO {SCHEMA}.rate_tally SELECT round_id, stratum, arm, kommunekode, maalgruppe, invited, answered FROM merged")
    op.drop_column("response_fact", "language", schema=SCHEMA)
