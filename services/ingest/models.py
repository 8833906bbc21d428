"""Ingest's tables (schema ``ingest``). CPR numbers are stored only encrypted."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.bus import bus_tables
from shared.db import make_base

Base = make_base("ingest")
BUS = bus_tables(Base.metadata)


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
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())

    __table_args__ = (sa.Index("ix_delivery_round_kommune", "round_id", "kommunekode"),)


class Citizen(Base):
    """A person in a delivery's population frame."""

    __tablename__ = "citizen"

    delivery_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey(Delivery.id, ondelete="CASCADE"), primary_key=True)
    pseudonym: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    cpr_ciphertext: Mapped[bytes] = mapped_column(sa.LargeBinary)  # nonce || AES-GCM ciphertext
    cpr_key_id: Mapped[str] = mapped_column(sa.Text)
    maalgruppe: Mapped[str] = mapped_column(sa.Text)  # target group
    ydelse: Mapped[str] = mapped_column(sa.Text)  # benefit as the case system names it
    gender: Mapped[str] = mapped_column(sa.String(1))
    age_band: Mapped[str] = mapped_column(sa.Text)
    duration_band: Mapped[str] = mapped_column(sa.Text)
