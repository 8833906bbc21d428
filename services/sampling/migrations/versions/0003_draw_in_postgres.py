"""sampling: the draw writes sampled_unit and the outbox in bulk, inside PostgreSQL

- sampled_unit loses its foreign key to draw: the rows are only ever written by the draw, in the
  draw's own transaction, right after its draw row; the per-row check trigger was a fifth of
  the national draw's time (123,000 lookups).
- outbox.envelope is stored uncompressed (STORAGE EXTERNAL): a sample.drawn chunk is ~200 kB
  of JSON, mostly sealed contacts (random bytes in base64), and pglz compressing ~60 MB per
  national draw cost more than the disk it saves on rows that live until the relay publishes
  them.

Revision ID: 0003
"""

from alembic import op

revision = "0003"
down_revision = "s090"
branch_labels = None
depends_on = None

SCHEMA = "sampling"


def upgrade() -> None:
    op.drop_constraint("fk_sampled_unit_draw_id_draw", "sampled_unit", schema=SCHEMA, type_="foreignkey")
    op.execute(f"ALTER TABLE {SCHEMA}.outbox ALTER COLUMN envelope SET STORAGE EXTERNAL")


def downgrade() -> None:
    op.execute(f"ALTER TABLE {SCHEMA}.outbox ALTER COLUMN envelope SET STORAGE EXTENDED")
    op.create_foreign_key(
        "fk_sampled_unit_draw_id_draw", "sampled_unit", "draw", ["draw_id"], ["id"],
        source_schema=SCHEMA, referent_schema=SCHEMA, ondelete="CASCADE",
    )
