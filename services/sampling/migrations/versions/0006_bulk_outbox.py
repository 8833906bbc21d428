"""sampling: sample.drawn chunks go to a bulk outbox, as the JSON text that is published

A national draw writes ~300 envelopes holding ~120,000 persons with their sealed contacts
(~60 MB); parsing them into the outbox's jsonb was a quarter of the draw statement, and the
relay then turned them back into text. The bulk outbox (shared.bus) stores the text and the
headers in columns; the relay forwards it as stored.

Revision ID: 0006
"""

from shared.bus import create_bulk_outbox_table

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

SCHEMA = "sampling"


def upgrade() -> None:
    create_bulk_outbox_table(SCHEMA)


def downgrade() -> None:
    from alembic import op

    op.drop_table("bulk_outbox", schema=SCHEMA)
