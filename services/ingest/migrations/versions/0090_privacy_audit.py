"""ingest: audit log, round closures and purge receipts, privacy requests, objection block list

Revision ID: i090
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from shared.audit import create_audit_log

revision = "i090"
down_revision = "0002"
branch_labels = None
depends_on = None

SCHEMA = "ingest"


def upgrade() -> None:
    create_audit_log(SCHEMA)
    op.create_table(
        "round_closure",
        sa.Column("round_id", sa.Text, primary_key=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_by", sa.Text, nullable=False),
        sa.Column("purge_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("purge_requested_at", sa.DateTime(timezone=True)),
        schema=SCHEMA,
    )
    op.create_table(
        "purge_receipt",
        sa.Column("round_id", sa.Text, primary_key=True),
        sa.Column("service", sa.Text, primary_key=True),
        sa.Column("removed", JSONB, nullable=False),
        sa.Column("verified", sa.Boolean, nullable=False),
        sa.Column("purged_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "privacy_request",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("requested_by", sa.Text, nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reference", sa.Text),
        schema=SCHEMA,
    )
    op.create_table(
        "privacy_receipt",
        sa.Column("request_id", sa.Uuid, sa.ForeignKey(f"{SCHEMA}.privacy_request.id"), primary_key=True),
        sa.Column("service", sa.Text, primary_key=True),
        sa.Column("removed", JSONB, nullable=False),
        sa.Column("verified", sa.Boolean, nullable=False),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "blocked_citizen",
        sa.Column("pseudonym", sa.Text, primary_key=True),
        sa.Column("request_id", sa.Uuid, sa.ForeignKey(f"{SCHEMA}.privacy_request.id"), nullable=False),
        schema=SCHEMA,
    )
    op.create_index("ix_citizen_cpr_key_id", "citizen", ["cpr_key_id"], schema=SCHEMA)


def downgrade() -> None:
    raise NotImplementedError("the audit log is append-only and is never dropped by a migration")
