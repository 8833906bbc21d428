"""dispatch: a step remembers when it was first handed to its channel

``handed_over_at`` is stamped by the sender's re-check of the stop rule, in the statement that
lets a batch go to its channel. A step handed over may have reached the citizen, so an answer
recorded afterwards no longer skips it: a reconciler resends it with the same key (the receiver
keeps one message per key) and it ends ``sent`` (services/dispatch/domain/lifecycle.py). Steps
``sending`` when this revision runs were claimed by a sender of the revision before, which did
not stamp: they count as handed over (the safe side: a resend with the same key).

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SCHEMA = "dispatch"


def upgrade() -> None:
    op.add_column("dispatch_step", sa.Column("handed_over_at", sa.DateTime(timezone=True)), schema=SCHEMA)
    op.execute(f"UPDATE {SCHEMA}.dispatch_step SET handed_over_at = sending_since WHERE status = 'sending'")


def downgrade() -> None:
    op.drop_column("dispatch_step", "handed_over_at", schema=SCHEMA)
