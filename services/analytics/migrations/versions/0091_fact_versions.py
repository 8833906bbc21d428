"""analytics: each answer fact carries the round version that counted it, so a publication
builder holding a round's counts reads only the facts counted since (see builder.py)

Revision ID: a091
"""

import sqlalchemy as sa
from alembic import op

revision = "a091"
down_revision = "a090"
branch_labels = None
depends_on = None

SCHEMA = "analytics"


def upgrade() -> None:
    # Facts counted before this revision get 0: a builder always loads a round in full first.
    op.add_column("response_fact", sa.Column("version", sa.BigInteger, nullable=False, server_default="0"), schema=SCHEMA)
    op.create_index("ix_response_fact_round_version", "response_fact", ["round_id", "version"], schema=SCHEMA)
    # The version at which the round's tallies last changed otherwise than by new facts (an
    # erasure): counts held from before it are reloaded in full.
    op.add_column("round_state", sa.Column("counts_reset_version", sa.BigInteger, nullable=False, server_default="0"), schema=SCHEMA)


def downgrade() -> None:
    op.drop_column("round_state", "counts_reset_version", schema=SCHEMA)
    op.drop_index("ix_response_fact_round_version", table_name="response_fact", schema=SCHEMA)
    op.drop_column("response_fact", "version", schema=SCHEMA)
