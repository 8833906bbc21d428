"""responses: the language each answer was given in

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("response", sa.Column("language", sa.Text), schema="responses")


def downgrade() -> None:
    op.drop_column("response", "language", schema="responses")
