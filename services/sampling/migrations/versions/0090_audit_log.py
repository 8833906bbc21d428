"""sampling: the append-only audit log (shared.audit)

Revision ID: s090
"""

from shared.audit import create_audit_log

revision = "s090"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_audit_log("sampling")


def downgrade() -> None:
    raise NotImplementedError("the audit log is append-only and is never dropped by a migration")
