"""Ingest's tables (schema ``ingest``). CPR numbers are stored only encrypted."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.ingest.domain.rounds import PHASES
from shared.audit import audit_log_table
from shared.bus import bus_tables
from shared.db import make_base

Base = make_base("ingest")
# population.received chunks wait in the bulk outbox (shared.bus: the envelope as the text that
# is published, headers in columns), not in BUS.outbox: a national delivery is ~200 MB of them.
# Same transactional guarantees: written in the delivery's transaction, deleted once Kafka has
# acknowledged (migrations i091, i092).
BUS = bus_tables(Base.metadata, bulk_outbox="bulk_outbox")
POPULATION_OUTBOX = BUS.bulk_outbox
AUDIT = audit_log_table(Base.metadata)  # append-only (shared.audit)


class Delivery(Base):
    """One extract pushed by a case system for a municipality and round."""

    __tablename__ = "delivery"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    round_id: Mapped[str] = mapped_column(sa.Text)
    kommunekode: Mapped[str] = mapped_column(sa.Text)
    delivered_by: Mapped[str] = mapped_column(sa.Text)  # the token's subject (case-system client)
    reference_date: Mapped[date]
    status: Mapped[str] = mapped_column(sa.Text)  # accepted | rejected | superseded
    rows_read: Mapped[int] = mapped_column(default=0)
    rows_valid: Mapped[int] = mapped_column(default=0)
    rows_rejected: Mapped[int] = mapped_column(default=0)
    rows_excluded: Mapped[int] = mapped_column(default=0)
    report: Mapped[dict] = mapped_column(JSONB, default=dict)
    supersedes: Mapped[uuid.UUID | None]
    # The maalgruppe mapping table version the citizens were classified with (reproducibility).
    mapping_version: Mapped[str] = mapped_column(sa.Text, server_default="v1")
    job_id: Mapped[uuid.UUID | None]  # the upload job that produced it; None for JSON batches
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())

    __table_args__ = (sa.Index("ix_delivery_round_kommune", "round_id", "kommunekode"),)


class Citizen(Base):
    """A person in a delivery's population frame.

    Partitioned by delivery (migration i093): each delivery's citizens are one table, loaded and
    indexed in bulk and attached in the delivery's transaction (services.ingest.partitions).
    """

    __tablename__ = "citizen"

    # The delivery's id, and the partition key; no foreign key (migration i091): checking one
    # costs a query per row of a million-row COPY, and only ingest_delivery writes citizens,
    # after their delivery row.
    delivery_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # Hex digits, compared bytewise (migration i091): cheaper index maintenance at a million rows.
    pseudonym: Mapped[str] = mapped_column(sa.Text(collation="C"), primary_key=True)
    cpr_ciphertext: Mapped[bytes] = mapped_column(sa.LargeBinary)  # nonce || AES-GCM ciphertext
    cpr_key_id: Mapped[str] = mapped_column(sa.Text)
    maalgruppe: Mapped[str] = mapped_column(sa.Text)  # target group
    ydelse: Mapped[str] = mapped_column(sa.Text)  # benefit as the case system names it
    gender: Mapped[str] = mapped_column(sa.String(1))
    age_band: Mapped[str] = mapped_column(sa.Text)
    duration_band: Mapped[str] = mapped_column(sa.Text)
    # Contact details (CPR for Digital Post, name, phone) sealed for dispatch (shared.crypto):
    # nonce || AES-GCM ciphertext, released on contacts.released only if the citizen is sampled.
    # NULL for citizens delivered before migration i094.
    contact_sealed: Mapped[bytes | None] = mapped_column(sa.LargeBinary)
    contact_key_id: Mapped[str | None] = mapped_column(sa.Text)

    # The primary key leads with the pseudonym, so it also finds a person in other municipalities'
    # deliveries of the same round (cross-delivery duplicates); it includes delivery_id because a
    # partitioned table's key must hold the partition key.
    __table_args__ = (
        sa.PrimaryKeyConstraint("pseudonym", "delivery_id"),
        {"postgresql_partition_by": "LIST (delivery_id)"},
    )


class ExtractJob(Base):
    """An uploaded extract file being (or having been) validated and stored in the background.

    The job row is the file's whole story for the caller: progress while it runs, the report when
    it ends. Its final status commits in the same transaction as the delivery it produced, so
    "succeeded" and "the delivery exists" can never disagree.
    """

    __tablename__ = "extract_job"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    round_id: Mapped[str] = mapped_column(sa.Text)
    kommunekode: Mapped[str] = mapped_column(sa.Text)
    submitted_by: Mapped[str] = mapped_column(sa.Text)
    reference_date: Mapped[date]
    profile: Mapped[str] = mapped_column(sa.Text)  # column profile (vendor vocabulary), e.g. "momentum" or "acme@2"
    # The profile as resolved when the file was accepted (ColumnProfile.to_spec: a registered
    # profile's headers, a one-off column_map), so the job reads the file as it was checked.
    profile_spec: Mapped[dict | None] = mapped_column(JSONB)
    dry_run: Mapped[bool] = mapped_column(server_default=sa.false())  # validate and report, store nothing
    confirm_replacement: Mapped[bool] = mapped_column(server_default=sa.false())  # see domain.replacement
    file_name: Mapped[str | None] = mapped_column(sa.Text)  # as the uploader named it, for the operator's listing
    policy: Mapped[str] = mapped_column(sa.Text)  # accept_valid | reject_all
    file_format: Mapped[str] = mapped_column(sa.Text)  # csv | xlsx | json
    file_path: Mapped[str | None] = mapped_column(sa.Text)  # cleared once the file is deleted
    file_bytes: Mapped[int] = mapped_column(sa.BigInteger)
    # queued -> running -> succeeded | rejected (policy reject_all) | failed (unreadable, crash)
    status: Mapped[str] = mapped_column(sa.Text)
    attempts: Mapped[int] = mapped_column(default=0)
    rows_read: Mapped[int] = mapped_column(default=0)
    rows_valid: Mapped[int] = mapped_column(default=0)
    rows_rejected: Mapped[int] = mapped_column(default=0)
    rows_excluded: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(sa.Text)  # why the whole file failed; never personal data
    report: Mapped[dict] = mapped_column(JSONB, default=dict)
    delivery_id: Mapped[uuid.UUID | None]
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())
    started_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # Moves with every progress write: a running job whose heartbeat stops was left by a crash.
    heartbeat_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())

    __table_args__ = (
        sa.Index("ix_extract_job_status", "status", "created_at"),
        sa.Index("ix_extract_job_round", "round_id", "created_at"),  # the operator's listing of a round
    )


class RegisteredProfile(Base):
    """A column profile registered over the API by a vendor or KL (domain.profiles.registered_profile):
    a built-in profile's headers plus its own. Versions are kept, never changed: a job records
    which one it read its file with."""

    __tablename__ = "column_profile"

    name: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    version: Mapped[int] = mapped_column(primary_key=True)
    base: Mapped[str] = mapped_column(sa.Text)
    display_name: Mapped[str] = mapped_column(sa.Text)
    columns: Mapped[dict] = mapped_column(JSONB)  # canonical column -> the headers it adds
    registered_by: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())


PHASE_KNOWN = "phase IN ({})".format(", ".join(f"'{phase}'" for phase in PHASES))


class RoundDefinition(Base):
    """A round as KL's operator defined it, with its phase (services.ingest.domain.rounds).

    Every change raises ``revision`` and publishes the whole definition (round.defined) in the
    same transaction; ``published_revision`` lags only for definitions written without an event
    (the migration that defined the rounds delivered before rounds were defined: the phase
    worker publishes them)."""

    __tablename__ = "round_definition"

    round_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    revision: Mapped[int]
    published_revision: Mapped[int] = mapped_column(server_default="0")
    name: Mapped[str] = mapped_column(sa.Text)
    reference_date: Mapped[date]
    maalgruppe_mapping_version: Mapped[str] = mapped_column(sa.Text)
    questionnaire_version: Mapped[str | None] = mapped_column(sa.Text)
    kommuner: Mapped[list[str]] = mapped_column(sa.ARRAY(sa.Text), server_default="{}")  # empty: all 98
    delivery_deadline: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    invitation_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    reminders_at: Mapped[list[datetime]] = mapped_column(sa.ARRAY(sa.DateTime(timezone=True)), server_default="{}")
    fieldwork_ends_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    sending_window_start: Mapped[time] = mapped_column(sa.Time, server_default="08:00")
    sending_window_end: Mapped[time] = mapped_column(sa.Time, server_default="20:00")
    retention_days: Mapped[int]
    # The languages the round offers (shared.events.SURVEY_LANGUAGES; empty: every one) and the
    # review status their translations need (draft | reviewed).
    languages: Mapped[list[str]] = mapped_column(sa.ARRAY(sa.Text), server_default="{}")
    translation_status: Mapped[str] = mapped_column(sa.Text, server_default="draft")
    phase: Mapped[str] = mapped_column(sa.Text)
    phase_changed_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    implicit: Mapped[bool] = mapped_column(server_default=sa.false())
    created_by: Mapped[str] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())
    updated_by: Mapped[str] = mapped_column(sa.Text)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())

    __table_args__ = (
        # The phases of the rules (domain.rounds.PHASES); the migration's copy is checked against
        # them (tests/ingest/test_round_phase_constraint.py).
        sa.CheckConstraint(PHASE_KNOWN, name="ck_round_definition_phase_known"),
        sa.CheckConstraint("translation_status IN ('draft', 'reviewed')", name="ck_round_definition_translation_status"),
        sa.Index("ix_round_definition_unpublished", "round_id", postgresql_where=sa.text("published_revision < revision")),
    )
