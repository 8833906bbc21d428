"""analytics: BI keys (services/analytics/bi_keys): long-lived, revocable, read-only credentials a
BI tool sends as Basic credentials for an unattended refresh. The secret is kept as its SHA-256
only; a revoked key's row stays (who revoked it, when).

Revision ID: a095
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import ARRAY

revision = "a095"
down_revision = "a094"
branch_labels = None
depends_on = None

SCHEMA = "analytics"


def upgrade() -> None:
    op.create_table(
        "bi_key",
        sa.Column("key_id", sa.Text, primary_key=True),
        sa.Column("secret_hash", sa.Text, nullable=False),
        sa.Column("owner", sa.Text, nullable=False),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("scopes", ARRAY(sa.Text), nullable=False),
        sa.Column("kommunekoder", ARRAY(sa.Text), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.Column("revoked_by", sa.Text),
        sa.Column("last_used_at", sa.DateTime(timezone=True)),
        schema=SCHEMA,
    )
    op.create_index("ix_bi_key_owner", "bi_key", ["owner"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_table("bi_key", schema=SCHEMA)
