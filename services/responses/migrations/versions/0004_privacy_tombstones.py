"""responses: tombstones of purged rounds and erased citizens (shared.privacy)

A link.issued reaching responses after the round's purge or the citizen's erasure opens no link.

Revision ID: 0004
"""

from shared.privacy import create_tombstones

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_tombstones("responses")


def downgrade() -> None:
    from alembic import op

    op.drop_table("privacy_tombstone", schema="responses")
