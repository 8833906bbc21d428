"""sampling: the frame's counts are kept when a delivery is activated, not scanned at the draw

- frame_cell: per delivery, the number of units per (target group, bands, exclusion flags):
  ~200 rows per municipality instead of its thousands of units. Counts, exclusions and margins
  for a preview or a draw sum these (services.sampling.frame).
- frame_duplicate: units of a delivery whose pseudonym was in another active delivery of the
  round when it was activated (candidates for the draw's duplicate check, usually none).
- frame_unit gets an index on pseudonym: the activation looks up the delivery's pseudonyms in
  the round's other deliveries, and erasure finds a citizen's rows without a table scan.

Existing active deliveries are counted here, so a database upgraded mid-round draws from the
same numbers a fresh activation would give.

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SCHEMA = "sampling"


def upgrade() -> None:
    def fk() -> sa.ForeignKey:
        return sa.ForeignKey(f"{SCHEMA}.frame_delivery.delivery_id", ondelete="CASCADE")

    op.create_table(
        "frame_cell",
        sa.Column("delivery_id", sa.Uuid, fk(), nullable=False),
        sa.Column("maalgruppe", sa.Text, nullable=False),
        sa.Column("gender", sa.String(1), nullable=False),
        sa.Column("age_band", sa.Text, nullable=False),
        sa.Column("duration_band", sa.Text, nullable=False),
        sa.Column("forskerbeskyttet", sa.Boolean, nullable=False),
        sa.Column("deceased", sa.Boolean, nullable=False),
        sa.Column("emigrated", sa.Boolean, nullable=False),
        sa.Column("n", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint(
            "delivery_id", "maalgruppe", "gender", "age_band", "duration_band", "forskerbeskyttet", "deceased", "emigrated"
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "frame_duplicate",
        sa.Column("delivery_id", sa.Uuid, fk(), primary_key=True),
        sa.Column("pseudonym", sa.Text, primary_key=True),
        schema=SCHEMA,
    )
    op.create_index("ix_frame_unit_pseudonym", "frame_unit", ["pseudonym"], schema=SCHEMA)
    op.execute(
        f"""
        INSERT INTO {SCHEMA}.frame_cell
        SELECT fu.delivery_id, fu.maalgruppe, fu.gender, fu.age_band, fu.duration_band,
               fu.forskerbeskyttet, fu.deceased, fu.emigrated, count(*)
        FROM {SCHEMA}.frame_unit fu JOIN {SCHEMA}.frame_delivery d ON d.delivery_id = fu.delivery_id
        WHERE d.active
        GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
        """
    )
    op.execute(
        f"""
        INSERT INTO {SCHEMA}.frame_duplicate
        SELECT fu.delivery_id, fu.pseudonym
        FROM {SCHEMA}.frame_unit fu JOIN {SCHEMA}.frame_delivery d ON d.delivery_id = fu.delivery_id
        WHERE d.active AND EXISTS (
            SELECT 1 FROM {SCHEMA}.frame_unit o JOIN {SCHEMA}.frame_delivery od ON od.delivery_id = o.delivery_id
            WHERE o.pseudonym = fu.pseudonym AND od.round_id = d.round_id AND od.active AND od.delivery_id <> d.delivery_id
        )
        """
    )


def downgrade() -> None:
    op.drop_index("ix_frame_unit_pseudonym", "frame_unit", schema=SCHEMA)
    op.drop_table("frame_duplicate", schema=SCHEMA)
    op.drop_table("frame_cell", schema=SCHEMA)
