"""dispatch: round plans, a step per channel, attempt state for exactly-once sending

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "dispatch"


def upgrade() -> None:
    op.create_table(
        "round_plan",
        sa.Column("round_id", sa.Text, primary_key=True),
        sa.Column("kommunekode", sa.Text, primary_key=True),
        sa.Column("plan", JSONB, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=SCHEMA,
    )
    # Old steps were all Digital Post letters.
    op.execute(f"UPDATE {SCHEMA}.dispatch_step SET channel = 'letter' WHERE channel = 'digital_post'")
    # The primary key gains the channel (a reminder may go as a letter and an SMS). 0001 left the
    # constraint name to the database, so look it up.
    op.execute(
        f"""DO $$ DECLARE pk text; BEGIN
            SELECT conname INTO pk FROM pg_constraint
             WHERE conrelid = '{SCHEMA}.dispatch_step'::regclass AND contype = 'p';
            EXECUTE format('ALTER TABLE {SCHEMA}.dispatch_step DROP CONSTRAINT %I', pk);
        END $$"""
    )
    op.create_primary_key("pk_dispatch_step", "dispatch_step", ["invitation_id", "step", "channel"], schema=SCHEMA)
    for name, type_ in (
        ("sending_since", sa.DateTime(timezone=True)),
        ("claimed_by", sa.BigInteger),
        ("last_error", sa.Text),
        ("skip_reason", sa.Text),
    ):
        op.add_column("dispatch_step", sa.Column(name, type_), schema=SCHEMA)
    op.create_index("ix_dispatch_step_sending", "dispatch_step", ["claimed_by"], schema=SCHEMA,
                    postgresql_where=sa.text("status = 'sending'"))
    op.create_index("ix_invitation_round", "invitation", ["round_id", "kommunekode"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_index("ix_invitation_round", "invitation", schema=SCHEMA)
    op.drop_index("ix_dispatch_step_sending", "dispatch_step", schema=SCHEMA)
    for name in ("skip_reason", "last_error", "claimed_by", "sending_since"):
        op.drop_column("dispatch_step", name, schema=SCHEMA)
    op.drop_constraint("pk_dispatch_step", "dispatch_step", schema=SCHEMA)
    op.create_primary_key("dispatch_step_pkey", "dispatch_step", ["invitation_id", "step"], schema=SCHEMA)
    op.drop_table("round_plan", schema=SCHEMA)
