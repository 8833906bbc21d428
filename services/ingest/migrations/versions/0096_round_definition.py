"""ingest: the round as a defined entity with a phase (round.defined)

``round_definition`` holds each round's definition and lifecycle phase (docs/rounds.md). Every
round that already has deliveries, upload jobs or a closure gets a default definition here
(``implicit``): its name is its id, its reference date and mapping version those of its
deliveries, and its phase what ingest knows of it: ``closed`` when it was closed; ``in_fieldwork``
when it was drawn (ingest released the sample's contacts: ``contacts.released`` in its audit
log), with the first release as ``invitation_at``, since before rounds were defined the draw sent
the letters at once, and dispatch keeps sending such a round's reminders; ``collecting_extracts``
otherwise. The
migration publishes nothing itself: its rows have ``published_revision`` 0, and ingest's phase
worker publishes every definition whose revision is unpublished (services.ingest.rounds).

Revision ID: i096
"""

import sqlalchemy as sa
from alembic import op

revision = "i096"
down_revision = "i095"
branch_labels = None
depends_on = None

DEFAULT_RETENTION_DAYS = 90  # IngestSettings.retention_days' default


def upgrade() -> None:
    op.create_table(
        "round_definition",
        sa.Column("round_id", sa.Text, primary_key=True),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("published_revision", sa.Integer, nullable=False, server_default="0"),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("reference_date", sa.Date, nullable=False),
        sa.Column("maalgruppe_mapping_version", sa.Text, nullable=False),
        sa.Column("questionnaire_version", sa.Text),
        sa.Column("kommuner", sa.ARRAY(sa.Text), nullable=False, server_default="{}"),
        sa.Column("delivery_deadline", sa.DateTime(timezone=True)),
        sa.Column("invitation_at", sa.DateTime(timezone=True)),
        sa.Column("reminders_at", sa.ARRAY(sa.DateTime(timezone=True)), nullable=False, server_default="{}"),
        sa.Column("fieldwork_ends_at", sa.DateTime(timezone=True)),
        sa.Column("sending_window_start", sa.Time, nullable=False, server_default="08:00"),
        sa.Column("sending_window_end", sa.Time, nullable=False, server_default="20:00"),
        sa.Column("retention_days", sa.Integer, nullable=False),
        sa.Column("phase", sa.Text, nullable=False),
        sa.Column("phase_changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("implicit", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_by", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_by", sa.Text, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(
            "phase IN ('planned', 'collecting_extracts', 'sample_drawn', 'fieldwork_scheduled', 'in_fieldwork', "
            "'fieldwork_ended', 'closed', 'purged')",
            name="ck_round_definition_phase_known",
        ),
        schema="ingest",
    )
    op.create_index(
        "ix_round_definition_unpublished",
        "round_definition",
        ["round_id"],
        schema="ingest",
        postgresql_where=sa.text("published_revision < revision"),
    )
    # The rounds that exist so far: those with deliveries, upload jobs or a closure.
    op.execute(
        f"""
        WITH known AS (
            SELECT round_id FROM ingest.delivery
            UNION SELECT round_id FROM ingest.extract_job
            UNION SELECT round_id FROM ingest.round_closure
        ),
        released AS (
            SELECT resource->>'round_id' AS round_id, min(at) AS first_at
            FROM ingest.audit_log WHERE action = 'contacts.released' GROUP BY 1
        )
        INSERT INTO ingest.round_definition (
            round_id, revision, published_revision, name, reference_date, maalgruppe_mapping_version,
            retention_days, phase, phase_changed_at, implicit, created_by, updated_by, invitation_at
        )
        SELECT k.round_id, 1, 0, k.round_id,
               coalesce(
                   (SELECT max(d.reference_date) FROM ingest.delivery d WHERE d.round_id = k.round_id),
                   (SELECT max(j.reference_date) FROM ingest.extract_job j WHERE j.round_id = k.round_id),
                   (c.closed_at AT TIME ZONE 'UTC')::date
               ),
               coalesce(
                   (SELECT max(d.mapping_version) FROM ingest.delivery d WHERE d.round_id = k.round_id AND d.status = 'accepted'),
                   (SELECT max(d.mapping_version) FROM ingest.delivery d WHERE d.round_id = k.round_id),
                   'v2'
               ),
               CASE WHEN c.round_id IS NULL THEN {DEFAULT_RETENTION_DAYS}
                    ELSE greatest(1, ceil(extract(epoch FROM c.purge_after - c.closed_at) / 86400)::int) END,
               CASE WHEN c.round_id IS NOT NULL THEN 'closed'
                    WHEN r.round_id IS NOT NULL THEN 'in_fieldwork'
                    ELSE 'collecting_extracts' END,
               coalesce(c.closed_at, r.first_at, now()), true, 'migration i096', 'migration i096', r.first_at
        FROM known k
        LEFT JOIN ingest.round_closure c ON c.round_id = k.round_id
        LEFT JOIN released r ON r.round_id = k.round_id
        """
    )


def downgrade() -> None:
    op.drop_table("round_definition", schema="ingest")
