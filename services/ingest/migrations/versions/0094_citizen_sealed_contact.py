"""ingest: each citizen's sealed contact stays in ingest until the citizen is sampled

population.received no longer carries contacts (v2): ingest keeps each citizen's contact sealed
for dispatch (nonce || AES-GCM ciphertext, and the contact key's id) next to the CPR ciphertext,
and releases the sampled citizens' on contacts.released (services.ingest.release). Unsampled
citizens' contacts never leave ingest, and go with the citizen row (purge, erasure, supersede).

Citizens delivered before this migration have no stored contact (their contacts went out in v1
events): a release reports them missing, and the municipality re-delivers to contact them.

Revision ID: i094
"""

from alembic import op

revision = "i094"
down_revision = "i093"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # On the partitioned parent: every partition gets the columns (no rewrite: nullable, no default).
    op.execute("ALTER TABLE ingest.citizen ADD COLUMN contact_sealed bytea, ADD COLUMN contact_key_id text")


def downgrade() -> None:
    op.execute("ALTER TABLE ingest.citizen DROP COLUMN contact_sealed, DROP COLUMN contact_key_id")
