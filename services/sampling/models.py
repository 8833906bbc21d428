"""Sampling's tables (schema ``sampling``): the frame per round and the draws."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.audit import audit_log_table
from shared.bus import bus_tables
from shared.db import make_base
from shared.privacy import tombstone_table

Base = make_base("sampling")
# sample.drawn chunks (~120,000 persons per national draw) wait in the bulk outbox as the JSON
# text that is published (shared.bus), not parsed into jsonb.
BUS = bus_tables(Base.metadata, bulk_outbox="bulk_outbox")
AUDIT = audit_log_table(Base.metadata)  # append-only (shared.audit)
TOMBSTONES = tombstone_table(Base.metadata)  # purged rounds, erased citizens (shared.privacy)


class FrameDelivery(Base):
    """A municipality's population delivery as it arrives in chunks; the newest complete one is
    the active frame for its round and municipality."""

    __tablename__ = "frame_delivery"

    delivery_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    round_id: Mapped[str] = mapped_column(sa.Text)
    kommunekode: Mapped[str] = mapped_column(sa.Text)
    reference_date: Mapped[date]
    chunks_received: Mapped[int] = mapped_column(default=0)
    chunk_count: Mapped[int | None]
    person_count: Mapped[int | None]
    complete: Mapped[bool] = mapped_column(default=False)
    active: Mapped[bool] = mapped_column(default=False)
    received_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())

    __table_args__ = (sa.Index("ix_frame_delivery_round_kommune", "round_id", "kommunekode"),)


class FrameUnit(Base):
    """A citizen of a delivery, as far as the draw needs them: pseudonym, stratum, bands and the
    exclusion flags. No contact data (migration 0007): ingest keeps the contacts and releases
    the sampled citizens' to dispatch itself."""

    __tablename__ = "frame_unit"

    delivery_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey(FrameDelivery.delivery_id, ondelete="CASCADE"), primary_key=True
    )
    pseudonym: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    maalgruppe: Mapped[str] = mapped_column(sa.Text)
    gender: Mapped[str] = mapped_column(sa.String(1))
    age_band: Mapped[str] = mapped_column(sa.Text)
    duration_band: Mapped[str] = mapped_column(sa.Text)
    forskerbeskyttet: Mapped[bool]
    deceased: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    emigrated: Mapped[bool] = mapped_column(default=False, server_default=sa.false())

    # Activation looks a delivery's pseudonyms up in the round's other deliveries; erasure finds a
    # citizen's rows (migration 0004).
    __table_args__ = (sa.Index("ix_frame_unit_pseudonym", "pseudonym"),)


class FrameCell(Base):
    """A delivery's units counted by target group, bands and exclusion flags, written when the
    delivery is activated (services.sampling.frame): counts, exclusions and margins of a round
    sum these ~200 rows per municipality instead of scanning its units."""

    __tablename__ = "frame_cell"

    delivery_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey(FrameDelivery.delivery_id, ondelete="CASCADE"), primary_key=True
    )
    maalgruppe: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    gender: Mapped[str] = mapped_column(sa.String(1), primary_key=True)
    age_band: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    duration_band: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    forskerbeskyttet: Mapped[bool] = mapped_column(primary_key=True)
    deceased: Mapped[bool] = mapped_column(primary_key=True)
    emigrated: Mapped[bool] = mapped_column(primary_key=True)
    n: Mapped[int]


class FrameDuplicate(Base):
    """Units of a delivery whose pseudonym occurred in another active delivery of the round when
    the delivery was activated: the candidates the draw checks for a citizen delivered twice.
    Activations of a round are serialised, so of two deliveries sharing a citizen the later one
    always records it; a row whose twin has since been replaced is re-checked and drops out."""

    __tablename__ = "frame_duplicate"

    delivery_id: Mapped[uuid.UUID] = mapped_column(
        sa.ForeignKey(FrameDelivery.delivery_id, ondelete="CASCADE"), primary_key=True
    )
    pseudonym: Mapped[str] = mapped_column(sa.Text, primary_key=True)


class RoundAllocation(Base):
    """The allocation proposed for a round, previewable and adjustable before the draw.

    `frame_counts` is the eligible N_h the allocation was computed from: the draw refuses to
    use it if the frame has changed since (a re-delivery), so π = n_h / N_h stays true."""

    __tablename__ = "round_allocation"

    round_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    rules: Mapped[dict] = mapped_column(JSONB)  # AllocationRules as JSON
    recent_rounds: Mapped[int]  # ExclusionRules.recent_rounds used for the frame
    overrides: Mapped[dict] = mapped_column(JSONB)  # "kommunekode:maalgruppe" -> n_h
    frame_counts: Mapped[dict] = mapped_column(JSONB)  # "kommunekode:maalgruppe" -> eligible N_h
    status: Mapped[str] = mapped_column(sa.Text)  # proposed | confirmed
    updated_by: Mapped[str] = mapped_column(sa.Text)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())
    confirmed_by: Mapped[str | None] = mapped_column(sa.Text)
    confirmed_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    # Where the operator's max_sample capped a municipality below what the 200-answers rule asks
    # (domain.allocation.CapConflict as JSON, with who set the cap and when).
    cap_decisions: Mapped[list] = mapped_column(JSONB, server_default="[]")


class Draw(Base):
    __tablename__ = "draw"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    round_id: Mapped[str] = mapped_column(sa.Text, unique=True)  # one confirmed draw per round
    seed: Mapped[int] = mapped_column(sa.BigInteger)
    drawn_by: Mapped[str] = mapped_column(sa.Text)
    allocation: Mapped[dict] = mapped_column(JSONB)  # the allocation table drawn from
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())
    # The frame's reference date orders rounds for the "sampled in the last N rounds" rule.
    reference_date: Mapped[date | None]
    rules: Mapped[dict | None] = mapped_column(JSONB)
    recent_rounds: Mapped[int | None]
    exclusions: Mapped[dict | None] = mapped_column(JSONB)  # counts per reason, overall and per stratum
    # Population margins of the eligible frame (for post-stratification / raking later).
    margins: Mapped[dict | None] = mapped_column(JSONB)
    population: Mapped[int | None]  # eligible frame size
    sampled: Mapped[int | None]
    # A draw before every participating municipality had delivered and before the deadline:
    # who forced it, and what was missing (domain.readiness).
    forced_by: Mapped[str | None] = mapped_column(sa.Text)
    readiness: Mapped[dict | None] = mapped_column(JSONB)


class SampledUnit(Base):
    __tablename__ = "sampled_unit"

    # The draw's id; no foreign key (migration 0003): only the draw writes these rows, in its own
    # transaction right after the draw row, and a per-row check cost a fifth of a national draw.
    draw_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # Position in the draw's order: within a stratum, any prefix is a simple random sample. The
    # key with draw_id (migration 0005): the draw writes its rows in this order, so the index
    # grows at its right edge; a pseudonym occurs once per draw (the draw refuses duplicates).
    seq: Mapped[int] = mapped_column(primary_key=True)
    pseudonym: Mapped[str] = mapped_column(sa.Text)
    kommunekode: Mapped[str] = mapped_column(sa.Text)
    stratum: Mapped[str] = mapped_column(sa.Text)
    inclusion_probability: Mapped[float]
    design_weight: Mapped[float]
    # Self-contained record of the sampled person (the frame rows may be replaced later).
    maalgruppe: Mapped[str | None] = mapped_column(sa.Text)
    gender: Mapped[str | None] = mapped_column(sa.String(1))
    age_band: Mapped[str | None] = mapped_column(sa.Text)
    duration_band: Mapped[str | None] = mapped_column(sa.Text)
    delivery_id: Mapped[uuid.UUID | None]  # the frame delivery the person was drawn from


class RoundDefinition(Base):
    """A round as ingest defines it (round.defined): the highest revision seen. Sampling refuses
    work for a round it has no definition of, and draws only when the round is ready
    (domain.readiness)."""

    __tablename__ = "round_definition"

    round_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    revision: Mapped[int]
    phase: Mapped[str] = mapped_column(sa.Text)
    kommuner: Mapped[list[str]] = mapped_column(sa.ARRAY(sa.Text))  # participating; empty: all 98
    delivery_deadline: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    definition: Mapped[dict] = mapped_column(JSONB)  # the event's data, as received
    received_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())
