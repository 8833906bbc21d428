"""dispatch: invitations, steps, bus tables

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from shared.bus import create_bus_tables

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

SCHEMA = "dispatch"


def upgrade() -> None:
    create_bus_tables(SCHEMA)
    op.create_table(
        "invitation",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("round_id", sa.Text, nullable=False),
        sa.Column("kommunekode", sa.Text, nullable=False),
        sa.Column("pseudonym", sa.Text, nullable=False),
        sa.Column("token_nonce", sa.LargeBinary, nullable=False),
        sa.Column("token_hash", sa.Text, nullable=False, unique=True),
        sa.Column("maalgruppe", sa.Text, nullable=False),
        sa.Column("stratum", sa.Text, nullable=False),
        sa.Column("arm", sa.Text),
        sa.Column("contact", JSONB, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.UniqueConstraint("round_id", "pseudonym", name="uq_invitation_round_pseudonym"),
        schema=SCHEMA,
    )
    op.create_table(
        "dispatch_step",
        sa.Column("invitation_id", sa.Uuid, sa.ForeignKey(f"{SCHEMA}.invitation.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("step", sa.Text, primary_key=True),
        sa.Column("channel", sa.Text, nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True)),
        sa.Column("provider_reference", sa.Text),
        schema=SCHEMA,
    )
    op.create_index("ix_dispatch_step_due", "dispatch_step", ["status", "due_at"], schema=SCHEMA)


def downgrade() -> None:
    for table in ("dispatch_step", "invitation", "processed_event", "outbox"):
        op.drop_table(table, schema=SCHEMA)
