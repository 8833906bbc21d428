"""dispatch: contacts arrive on contacts.released, apart from the sample

sample.drawn v2 carries no contact: ingest releases the sampled citizens' sealed contacts on
contacts.released, a different topic, so either may reach dispatch first. An invitation planned
before its contact has none yet (its steps wait in status ``waiting``); a release that comes
before its invitation is kept in ``released_contact`` until planning takes it (a NULL contact
there: ingest holds none, the citizen is never contacted).

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0003"
down_revision = "d090"
branch_labels = None
depends_on = None

SCHEMA = "dispatch"


def upgrade() -> None:
    op.alter_column("invitation", "contact", nullable=True, schema=SCHEMA)
    op.create_table(
        "released_contact",
        sa.Column("round_id", sa.Text, primary_key=True),
        sa.Column("pseudonym", sa.Text, primary_key=True),
        sa.Column("kommunekode", sa.Text, nullable=False),
        sa.Column("contact", JSONB),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("released_contact", schema=SCHEMA)
    # The old rule has every invitation hold a contact: those without one (still waiting, or never
    # to be contacted) go, with their steps.
    op.execute(f"DELETE FROM {SCHEMA}.invitation WHERE contact IS NULL")
    op.alter_column("invitation", "contact", nullable=False, schema=SCHEMA)
