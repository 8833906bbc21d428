"""Sampling's tables (schema ``sampling``): the frame per round and the draws."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.bus import bus_tables
from shared.db import make_base

Base = make_base("sampling")
BUS = bus_tables(Base.metadata)


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
    contact: Mapped[dict] = mapped_column(JSONB)  # sealed for dispatch; sampling cannot read it


class Draw(Base):
    __tablename__ = "draw"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    round_id: Mapped[str] = mapped_column(sa.Text, unique=True)  # one confirmed draw per round
    seed: Mapped[int] = mapped_column(sa.BigInteger)
    drawn_by: Mapped[str] = mapped_column(sa.Text)
    allocation: Mapped[dict] = mapped_column(JSONB)
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())


class SampledUnit(Base):
    __tablename__ = "sampled_unit"

    draw_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey(Draw.id, ondelete="CASCADE"), primary_key=True)
    pseudonym: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    kommunekode: Mapped[str] = mapped_column(sa.Text)
    stratum: Mapped[str] = mapped_column(sa.Text)
    inclusion_probability: Mapped[float]
    design_weight: Mapped[float]
