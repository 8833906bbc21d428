"""analytics: the round's population per municipality x target group x gender x age band x
duration band (frame.margins from sampling's draw): the margins calibration rakes the design
weights to, and the population mix of the dashboard's fair comparison; and each round's
estimation settings (calibration margins and bounds, lonely-stratum rule); and the sampled
citizens counted per sample.drawn chunk by target group x bands (response rates by band, the
R-indicator).

Revision ID: a096
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "a096"
down_revision = "a095"
branch_labels = None
depends_on = None

SCHEMA = "analytics"


def upgrade() -> None:
    op.create_table(
        "population_cell",
        sa.Column("round_id", sa.Text, primary_key=True),
        sa.Column("kommunekode", sa.Text, primary_key=True),
        sa.Column("maalgruppe", sa.Text, primary_key=True),
        sa.Column("gender", sa.String(1), primary_key=True),
        sa.Column("age_band", sa.Text, primary_key=True),
        sa.Column("duration_band", sa.Text, primary_key=True),
        sa.Column("draw_id", sa.Text, nullable=False),
        sa.Column("population", sa.Integer, nullable=False),
        schema=SCHEMA,
    )
    op.create_table(
        "round_calibration",
        sa.Column("round_id", sa.Text, primary_key=True),
        sa.Column("spec", JSONB, nullable=False),
        sa.Column("lonely", sa.Text, nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.CheckConstraint("lonely IN ('adjust', 'certainty', 'average')", name="round_calibration_lonely"),
        schema=SCHEMA,
    )
    op.create_table(
        "sample_chunk",
        sa.Column("round_id", sa.Text, primary_key=True),
        sa.Column("kommunekode", sa.Text, primary_key=True),
        sa.Column("draw_id", sa.Text, primary_key=True),
        sa.Column("chunk_no", sa.Integer, primary_key=True),
        sa.Column("cells", JSONB, nullable=False),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("sample_chunk", schema=SCHEMA)
    op.drop_table("round_calibration", schema=SCHEMA)
    op.drop_table("population_cell", schema=SCHEMA)
