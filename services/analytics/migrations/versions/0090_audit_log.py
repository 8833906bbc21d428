"""analytics: the append-only audit log (shared.audit)

Revision ID: a090
"""

from shared.audit import create_audit_log

revision = "a090"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    create_audit_log("analytics")


def downgrade() -> None:
    raise NotImplementedError("the audit log is append-only and is never dropped by a migration")
