"""ingest: column profiles registered over the API; upload options on the job

``column_profile`` holds the profiles vendors and KL register (POST /profiles), versioned, so a
new export header needs no release. An upload job keeps the profile as resolved when the file
was accepted (``profile_spec``: a registered profile's headers, a one-off column mapping), its
dry-run and confirm-replacement flags, and the uploaded file's name for the operator's listing;
a dry run ends with status ``validated``.

Revision ID: i095
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "i095"
down_revision = "i094"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "column_profile",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("base", sa.Text, nullable=False),
        sa.Column("display_name", sa.Text, nullable=False),
        sa.Column("columns", JSONB, nullable=False),
        sa.Column("registered_by", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        schema="ingest",
    )
    op.add_column("extract_job", sa.Column("profile_spec", JSONB), schema="ingest")
    op.add_column("extract_job", sa.Column("dry_run", sa.Boolean, server_default=sa.false(), nullable=False), schema="ingest")
    op.add_column(
        "extract_job", sa.Column("confirm_replacement", sa.Boolean, server_default=sa.false(), nullable=False), schema="ingest"
    )
    op.add_column("extract_job", sa.Column("file_name", sa.Text), schema="ingest")
    op.execute("ALTER TABLE ingest.extract_job DROP CONSTRAINT ck_extract_job_status_known")
    op.execute(
        "ALTER TABLE ingest.extract_job ADD CONSTRAINT ck_extract_job_status_known "
        "CHECK (status IN ('queued', 'running', 'succeeded', 'validated', 'rejected', 'failed'))"
    )
    op.create_index("ix_extract_job_round", "extract_job", ["round_id", "created_at"], schema="ingest")


def downgrade() -> None:
    op.drop_index("ix_extract_job_round", "extract_job", schema="ingest")
    op.execute("DELETE FROM ingest.extract_job WHERE status = 'validated'")
    op.execute("ALTER TABLE ingest.extract_job DROP CONSTRAINT ck_extract_job_status_known")
    op.execute(
        "ALTER TABLE ingest.extract_job ADD CONSTRAINT ck_extract_job_status_known "
        "CHECK (status IN ('queued', 'running', 'succeeded', 'rejected', 'failed'))"
    )
    for column in ("file_name", "confirm_replacement", "dry_run", "profile_spec"):
        op.drop_column("extract_job", column, schema="ingest")
    op.drop_table("column_profile", schema="ingest")
