"""sampling: the frame holds no contact data

population.received v2 carries no contacts: ingest keeps every citizen's sealed contact and
releases only the sampled citizens' to dispatch itself (contacts.released), and sample.drawn v2
carries none. frame_unit.contact, the sealed contact sampling used to copy from the frame into
sample.drawn, is dropped. PostgreSQL drops a column without rewriting the table: the bytes of
the contacts it held stay in the existing rows' storage, unreadable through SQL, until those
rows go (the round's purge, a re-delivery, an erasure) or the table is rewritten; they are
sealed, so they could not be read without dispatch's key either.

A frame delivered before this migration and drawn after it is published without contacts like
any other: ingest reports its citizens missing on contacts.released (it kept no contacts for
them either), and the municipality re-delivers to have them contacted.

Revision ID: 0007
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

SCHEMA = "sampling"


def upgrade() -> None:
    op.drop_column("frame_unit", "contact", schema=SCHEMA)


def downgrade() -> None:
    # The contacts cannot come back: they are gone from this database, and the events that
    # carried them (population.received v1) are no longer published. The column returns
    # nullable and empty, so the old code finds its schema; but a frame must be delivered again
    # as v1 before the old code draws from it: its draw concatenates each person's contact into
    # sample.drawn, and a person whose contact is NULL would drop out of the events unnoticed.
    op.add_column("frame_unit", sa.Column("contact", JSONB, nullable=True), schema=SCHEMA)
