"""responses: tombstones of purged rounds and erased citizens (shared.privacy)

A link.issued reaching responses after the round's purge or the citizen's erasure opens no link.

Revision ID: r101
"""

from shared.privacy import create_tombstones

revision = "r101"
down_revision = "r100"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_tombstones("responses")


def downgrade() -> None:
    from alembic import op

    op.drop_table("privacy_tombstone", schema="responses")
