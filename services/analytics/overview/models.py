"""The overview's tables (schema ``analytics``, migration a093): the latest snapshot each source
sent of a round. Counts only: no pseudonym, CPR number, name or phone."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.analytics.models import Base


class OverviewRound(Base):
    """The round's definition and phase as ingest last sent it (round.defined, highest revision)."""

    __tablename__ = "overview_round"

    round_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    revision: Mapped[int]
    phase: Mapped[str] = mapped_column(sa.Text)
    definition: Mapped[dict] = mapped_column(JSONB)  # the event's data
    received_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())


class OverviewDelivery(Base):
    """One accepted delivery's counts (delivery.accepted); a later delivery of the municipality
    names it in ``supersedes``."""

    __tablename__ = "overview_delivery"

    delivery_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    round_id: Mapped[str] = mapped_column(sa.Text)
    kommunekode: Mapped[str] = mapped_column(sa.Text)
    supersedes: Mapped[uuid.UUID | None]
    delivered_by: Mapped[str] = mapped_column(sa.Text)  # the case system's client id
    rows_read: Mapped[int]
    rows_valid: Mapped[int]
    rows_rejected: Mapped[int]
    rows_excluded: Mapped[int]
    exclusions: Mapped[dict] = mapped_column(JSONB)  # reason -> rows
    accepted_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))

    __table_args__ = (sa.Index("ix_overview_delivery_round", "round_id", "kommunekode"),)


class OverviewSnapshot(Base):
    """The latest snapshot a source sent of a round (sampling.progress, dispatch.progress): kept
    only when its ``as_of`` is later than the one held."""

    __tablename__ = "overview_snapshot"

    round_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    source: Mapped[str] = mapped_column(sa.Text, primary_key=True)  # sampling | dispatch
    as_of: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    snapshot: Mapped[dict] = mapped_column(JSONB)  # the event's data
