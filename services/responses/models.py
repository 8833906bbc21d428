"""Responses' tables (schema ``responses``)."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.bus import bus_tables
from shared.db import make_base

Base = make_base("responses")
BUS = bus_tables(Base.metadata)


class Respondent(Base):
    """A survey link, known by the hash of its token only."""

    __tablename__ = "respondent"

    token_hash: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    round_id: Mapped[str] = mapped_column(sa.Text)
    kommunekode: Mapped[str] = mapped_column(sa.Text)
    pseudonym: Mapped[str] = mapped_column(sa.Text)
    maalgruppe: Mapped[str] = mapped_column(sa.Text)
    stratum: Mapped[str] = mapped_column(sa.Text)
    gender: Mapped[str] = mapped_column(sa.String(1))
    age_band: Mapped[str] = mapped_column(sa.Text)
    duration_band: Mapped[str] = mapped_column(sa.Text)
    design_weight: Mapped[float]
    arm: Mapped[str | None] = mapped_column(sa.Text)
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    status: Mapped[str] = mapped_column(sa.Text, default="open")  # open | submitted | opted_out
    draft: Mapped[dict] = mapped_column(JSONB, default=dict)  # saved partial answers
    finished_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class Response(Base):
    __tablename__ = "response"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    token_hash: Mapped[str] = mapped_column(sa.ForeignKey(Respondent.token_hash, ondelete="CASCADE"), unique=True)
    questionnaire_id: Mapped[str] = mapped_column(sa.Text)
    questionnaire_version: Mapped[int]
    mode: Mapped[str] = mapped_column(sa.Text)  # web | paper
    answers: Mapped[dict] = mapped_column(JSONB)
    submitted_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
