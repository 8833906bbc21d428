"""analytics: incremental answer and response-rate tallies, round state

Revision ID: 0002
"""

import json

import sqlalchemy as sa
from alembic import op

from services.analytics.domain.answers import VALUE_CODES

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "analytics"


def upgrade() -> None:
    # Keyed counts, incremented only when a fact row is new: a replay rebuilds them exactly.
    op.create_table(
        "answer_tally",
        sa.Column("round_id", sa.Text, primary_key=True),
        sa.Column("stratum", sa.Text, primary_key=True),
        sa.Column("gender", sa.String(1), primary_key=True),
        sa.Column("age_band", sa.Text, primary_key=True),
        sa.Column("duration_band", sa.Text, primary_key=True),
        sa.Column("question", sa.Text, primary_key=True),
        sa.Column("code", sa.Text, primary_key=True),
        sa.Column("kommunekode", sa.Text, nullable=False),
        sa.Column("maalgruppe", sa.Text, nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "rate_tally",
        sa.Column("round_id", sa.Text, primary_key=True),
        sa.Column("stratum", sa.Text, primary_key=True),
        sa.Column("arm", sa.Text, primary_key=True),
        sa.Column("kommunekode", sa.Text, nullable=False),
        sa.Column("maalgruppe", sa.Text, nullable=False),
        sa.Column("invited", sa.Integer, nullable=False, server_default="0"),
        sa.Column("answered", sa.Integer, nullable=False, server_default="0"),
        schema=SCHEMA,
    )
    op.create_table(
        "round_state",
        sa.Column("round_id", sa.Text, primary_key=True),
        sa.Column("questionnaire_id", sa.Text),
        sa.Column("first_submitted_at", sa.DateTime(timezone=True)),
        # Bumped by every change to the round's facts: the key of the read cache, never published.
        sa.Column("version", sa.BigInteger, nullable=False, server_default="0"),
        schema=SCHEMA,
    )
    # Backfill from facts already held (an installation that ran 0001 only).
    codes = [(json.dumps(i), str(i)) for i in range(1, 6)] + [(json.dumps(str(i)), str(i)) for i in range(1, 6)]
    codes += [(json.dumps(raw), code) for raw, code in VALUE_CODES.items()]
    values = ", ".join(f"('{raw}', '{code}')" for raw, code in codes)
    op.execute(
        f"""
        INSERT INTO {SCHEMA}.answer_tally
        SELECT f.round_id, f.stratum, f.gender, f.age_band, f.duration_band, a.key, c.code,
               min(f.kommunekode), min(f.maalgruppe), count(*)
        FROM {SCHEMA}.response_fact f CROSS JOIN LATERAL jsonb_each(f.answers) a
        JOIN (VALUES {values}) c(raw, code) ON c.raw = a.value::text
        GROUP BY 1, 2, 3, 4, 5, 6, 7
        """
    )
    op.execute(
        f"""
        INSERT INTO {SCHEMA}.rate_tally (round_id, stratum, arm, kommunekode, maalgruppe, invited, answered)
        SELECT round_id, stratum, arm, min(kommunekode), min(maalgruppe), sum(invited), sum(answered) FROM (
            SELECT i.round_id, i.stratum, coalesce(i.arm, 'none') AS arm, i.kommunekode,
                   split_part(i.stratum, ':', 2) AS maalgruppe, 1 AS invited, 0 AS answered
            FROM {SCHEMA}.invited i
            UNION ALL
            SELECT r.round_id, r.stratum, coalesce(r.arm, 'none'), r.kommunekode, r.maalgruppe, 0, 1
            FROM {SCHEMA}.response_fact r
        ) x GROUP BY 1, 2, 3
        """
    )
    op.execute(
        f"""
        INSERT INTO {SCHEMA}.round_state (round_id, questionnaire_id, first_submitted_at, version)
        SELECT round_id, min(questionnaire_id), min(submitted_at), 1 FROM {SCHEMA}.response_fact GROUP BY 1
        ON CONFLICT DO NOTHING
        """
    )


def downgrade() -> None:
    for table in ("round_state", "rate_tally", "answer_tally"):
        op.drop_table(table, schema=SCHEMA)
