"""analytics: the dashboard's server-side sessions (services/analytics/dashboard/sessions.py): the
cookie holds only an opaque id; the row holds whose session it is, what it may do and how long it
lasts. The id itself is not stored, only its SHA-256, so a read of the table opens no session.

Revision ID: a094
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision = "a094"
down_revision = "a093"
branch_labels = None
depends_on = None

SCHEMA = "analytics"


def upgrade() -> None:
    op.create_table(
        "dashboard_session",
        sa.Column("id_hash", sa.Text, primary_key=True),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("scopes", ARRAY(sa.Text), nullable=False),
        sa.Column("kommunekoder", ARRAY(sa.Text), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("idle_seconds", sa.Integer, nullable=False),
        schema=SCHEMA,
    )
    # "log out everywhere" deletes by subject; the purge deletes by expiry
    op.create_index("dashboard_session_subject", "dashboard_session", ["subject"], schema=SCHEMA)
    op.create_index("dashboard_session_expires_at", "dashboard_session", ["expires_at"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("dashboard_session", schema=SCHEMA)
