"""dispatch: tombstones of purged rounds and erased citizens (shared.privacy)

A sample chunk or a contact release reaching dispatch after the round's purge or the citizen's
erasure plans no invitation and keeps no contact.

Revision ID: 0006
"""

from shared.privacy import create_tombstones

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_tombstones("dispatch")


def downgrade() -> None:
    from alembic import op

    op.drop_table("privacy_tombstone", schema="dispatch")
