"""responses: the append-only audit log; answers follow their link's anonymised token hash

Revision ID: r090
"""

from alembic import op

from shared.audit import create_audit_log

revision = "r090"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_audit_log("responses")
    # Retention replaces a link's token hash with a random one; the answer row must follow it.
    op.execute(
        """
        DO $$
        DECLARE c text;
        BEGIN
            SELECT conname INTO c FROM pg_constraint
             WHERE conrelid = 'responses.response'::regclass AND contype = 'f';
            EXECUTE format('ALTER TABLE responses.response DROP CONSTRAINT %I', c);
        END $$
        """
    )
    op.execute(
        """
        ALTER TABLE responses.response ADD CONSTRAINT fk_response_token_hash_respondent
            FOREIGN KEY (token_hash) REFERENCES responses.respondent (token_hash) ON DELETE CASCADE ON UPDATE CASCADE;
        """
    )


def downgrade() -> None:
    raise NotImplementedError("the audit log is append-only and is never dropped by a migration")
