"""dispatch: rounds are defined (round.defined) and scheduled; the draw only plans

A step's due time comes from its round's definition (invitation and reminder dates, the sending
window, the phase) and is NULL while the round has none: steps planned before this revision wait
for their round's definition. A reminder keeps the interval of the plan it was planned under
(``interval_days``), taken here from its distance to the invitation. ``cancelled``: not sent when
fieldwork ended.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = "dispatch"


def upgrade() -> None:
    op.create_table(
        "round_definition",
        sa.Column("round_id", sa.Text, primary_key=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("phase", sa.Text, nullable=False),
        sa.Column("definition", JSONB, nullable=False),
        sa.Column("steps_cancelled_at", sa.DateTime(timezone=True)),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema=SCHEMA,
    )
    op.add_column("dispatch_step", sa.Column("interval_days", sa.Float), schema=SCHEMA)
    op.execute(
        f"""
        UPDATE {SCHEMA}.dispatch_step AS s
        SET interval_days = EXTRACT(EPOCH FROM s.due_at - f.due_at) / 86400.0
                            / CASE s.step WHEN 'reminder_1' THEN 1 ELSE 2 END
        FROM (SELECT invitation_id, min(due_at) AS due_at FROM {SCHEMA}.dispatch_step
              WHERE step = 'invitation' GROUP BY invitation_id) AS f
        WHERE f.invitation_id = s.invitation_id AND s.step <> 'invitation'
        """
    )
    op.alter_column("dispatch_step", "due_at", nullable=True, schema=SCHEMA)
    op.execute(f"UPDATE {SCHEMA}.dispatch_step SET due_at = NULL WHERE status IN ('planned', 'waiting')")


def downgrade() -> None:
    # Without schedules, whatever has not gone out is due at once (as before this revision);
    # cancelled steps stay unsent.
    op.execute(f"UPDATE {SCHEMA}.dispatch_step SET due_at = now() WHERE due_at IS NULL")
    op.execute(f"UPDATE {SCHEMA}.dispatch_step SET status = 'skipped', skip_reason = 'fieldwork_ended'"
               " WHERE status = 'cancelled'")
    op.alter_column("dispatch_step", "due_at", nullable=False, schema=SCHEMA)
    op.drop_column("dispatch_step", "interval_days", schema=SCHEMA)
    op.drop_table("round_definition", schema=SCHEMA)
