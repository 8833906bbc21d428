"""ingest: extract upload jobs, mapping version per delivery, pseudonym index

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "ingest"


def upgrade() -> None:
    op.create_table(
        "extract_job",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("round_id", sa.Text, nullable=False),
        sa.Column("kommunekode", sa.Text, nullable=False),
        sa.Column("submitted_by", sa.Text, nullable=False),
        sa.Column("reference_date", sa.Date, nullable=False),
        sa.Column("profile", sa.Text, nullable=False),
        sa.Column("policy", sa.Text, nullable=False),
        sa.Column("file_format", sa.Text, nullable=False),
        sa.Column("file_path", sa.Text, nullable=True),
        sa.Column("file_bytes", sa.BigInteger, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("rows_read", sa.Integer, nullable=False, server_default="0"),
        sa.Column("rows_valid", sa.Integer, nullable=False, server_default="0"),
        sa.Column("rows_rejected", sa.Integer, nullable=False, server_default="0"),
        sa.Column("rows_excluded", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("report", JSONB, nullable=False, server_default="{}"),
        sa.Column("delivery_id", sa.Uuid, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'succeeded', 'rejected', 'failed')", name="status_known"
        ),
        schema=SCHEMA,
    )
    op.create_index("ix_extract_job_status", "extract_job", ["status", "created_at"], schema=SCHEMA)
    op.add_column("delivery", sa.Column("mapping_version", sa.Text, nullable=False, server_default="v1"), schema=SCHEMA)
    op.add_column("delivery", sa.Column("job_id", sa.Uuid, nullable=True), schema=SCHEMA)
    op.create_index("ix_citizen_pseudonym", "citizen", ["pseudonym"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_index("ix_citizen_pseudonym", table_name="citizen", schema=SCHEMA)
    op.drop_column("delivery", "job_id", schema=SCHEMA)
    op.drop_column("delivery", "mapping_version", schema=SCHEMA)
    op.drop_index("ix_extract_job_status", table_name="extract_job", schema=SCHEMA)
    op.drop_table("extract_job", schema=SCHEMA)
