"""sampling: exclusion flags, allocation per round, draw records with margins

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

SCHEMA = "sampling"


def upgrade() -> None:
    op.add_column("frame_unit", sa.Column("deceased", sa.Boolean, nullable=False, server_default=sa.false()), schema=SCHEMA)
    op.add_column("frame_unit", sa.Column("emigrated", sa.Boolean, nullable=False, server_default=sa.false()), schema=SCHEMA)
    op.create_table(
        "round_allocation",
        sa.Column("round_id", sa.Text, primary_key=True),
        sa.Column("rules", JSONB, nullable=False),
        sa.Column("recent_rounds", sa.Integer, nullable=False),
        sa.Column("overrides", JSONB, nullable=False),
        sa.Column("frame_counts", JSONB, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("updated_by", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.Column("confirmed_by", sa.Text),
        sa.Column("confirmed_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint("status IN ('proposed', 'confirmed')", name="status"),
        schema=SCHEMA,
    )
    for name, type_ in [
        ("reference_date", sa.Date),
        ("rules", JSONB),
        ("recent_rounds", sa.Integer),
        ("exclusions", JSONB),
        ("margins", JSONB),
        ("population", sa.Integer),
        ("sampled", sa.Integer),
    ]:
        op.add_column("draw", sa.Column(name, type_), schema=SCHEMA)
    for name, type_ in [
        ("maalgruppe", sa.Text),
        ("gender", sa.String(1)),
        ("age_band", sa.Text),
        ("duration_band", sa.Text),
        ("delivery_id", sa.Uuid),
        ("seq", sa.Integer),
    ]:
        op.add_column("sampled_unit", sa.Column(name, type_), schema=SCHEMA)
    # No extra index for "sampled in the last N rounds": it looks pseudonyms up by
    # (draw_id, pseudonym), the primary key, and every index slows the draw's COPY.


def downgrade() -> None:
    for name in ("maalgruppe", "gender", "age_band", "duration_band", "delivery_id", "seq"):
        op.drop_column("sampled_unit", name, schema=SCHEMA)
    for name in ("reference_date", "rules", "recent_rounds", "exclusions", "margins", "population", "sampled"):
        op.drop_column("draw", name, schema=SCHEMA)
    op.drop_table("round_allocation", schema=SCHEMA)
    op.drop_column("frame_unit", "emigrated", schema=SCHEMA)
    op.drop_column("frame_unit", "deceased", schema=SCHEMA)
