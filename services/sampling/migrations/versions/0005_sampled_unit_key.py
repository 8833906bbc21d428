"""sampling: sampled_unit is keyed by (draw_id, seq), not (draw_id, pseudonym)

The draw writes ~123,000 rows in one statement; a primary key on (draw_id, pseudonym) made it
sort them by pseudonym and compare 64-character texts for every index entry, a fifth of the
insert. seq (the unit's position in the draw) is unique within a draw as well and arrives in
order, so the index only ever grows at its right edge. A pseudonym still occurs at most once
per draw: the draw refuses a frame with a citizen delivered twice. Nothing looked rows up by
(draw_id, pseudonym) through the index but the "sampled in the last N rounds" rule, which
reads whole earlier draws (the new key's draw_id prefix) and hashes their pseudonyms.

Rows of draws made before seq existed (migration 0002) get one here, in (stratum, pseudonym)
order: the order of those draws was not recorded.

Revision ID: 0005
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

SCHEMA = "sampling"


def upgrade() -> None:
    op.execute(
        f"""
        UPDATE {SCHEMA}.sampled_unit su SET seq = n.seq
        FROM (SELECT draw_id, pseudonym, (row_number() OVER (PARTITION BY draw_id ORDER BY stratum, pseudonym) - 1)::int AS seq
              FROM {SCHEMA}.sampled_unit WHERE seq IS NULL) n
        WHERE su.draw_id = n.draw_id AND su.pseudonym = n.pseudonym
        """
    )
    op.alter_column("sampled_unit", "seq", nullable=False, schema=SCHEMA)
    op.drop_constraint("pk_sampled_unit", "sampled_unit", schema=SCHEMA, type_="primary")
    op.create_primary_key("pk_sampled_unit", "sampled_unit", ["draw_id", "seq"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_constraint("pk_sampled_unit", "sampled_unit", schema=SCHEMA, type_="primary")
    op.create_primary_key("pk_sampled_unit", "sampled_unit", ["draw_id", "pseudonym"], schema=SCHEMA)
    op.alter_column("sampled_unit", "seq", nullable=True, schema=SCHEMA)
