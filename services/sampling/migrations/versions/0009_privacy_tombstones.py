"""sampling: tombstones of purged rounds and erased citizens (shared.privacy)

A population chunk reaching sampling after the round's purge or the citizen's erasure puts
nothing back in the frame.

Revision ID: 0009
"""

from shared.privacy import create_tombstones

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_tombstones("sampling")


def downgrade() -> None:
    from alembic import op

    op.drop_table("privacy_tombstone", schema="sampling")
