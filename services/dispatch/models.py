"""Dispatch's tables (schema ``dispatch``): one invitation per sampled citizen and its steps."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from shared.bus import bus_tables
from shared.db import make_base

Base = make_base("dispatch")
BUS = bus_tables(Base.metadata)


class Invitation(Base):
    __tablename__ = "invitation"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    round_id: Mapped[str] = mapped_column(sa.Text)
    kommunekode: Mapped[str] = mapped_column(sa.Text)
    pseudonym: Mapped[str] = mapped_column(sa.Text)
    token_nonce: Mapped[bytes] = mapped_column(sa.LargeBinary)
    token_hash: Mapped[str] = mapped_column(sa.Text, unique=True)
    maalgruppe: Mapped[str] = mapped_column(sa.Text)
    stratum: Mapped[str] = mapped_column(sa.Text)
    arm: Mapped[str | None] = mapped_column(sa.Text)
    contact: Mapped[dict] = mapped_column(JSONB)  # sealed contact details, opened only to send
    status: Mapped[str] = mapped_column(sa.Text, default="active")  # active | answered | opted_out
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())

    __table_args__ = (sa.UniqueConstraint("round_id", "pseudonym", name="uq_invitation_round_pseudonym"),)


class DispatchStep(Base):
    """One planned message: the invitation or a reminder, on one channel."""

    __tablename__ = "dispatch_step"

    invitation_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey(Invitation.id, ondelete="CASCADE"), primary_key=True)
    step: Mapped[str] = mapped_column(sa.Text, primary_key=True)  # invitation | reminder_1 | reminder_2
    channel: Mapped[str] = mapped_column(sa.Text)
    due_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    status: Mapped[str] = mapped_column(sa.Text, default="planned")  # planned | sent | skipped | failed
    attempts: Mapped[int] = mapped_column(default=0)
    sent_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    provider_reference: Mapped[str | None] = mapped_column(sa.Text)

    __table_args__ = (sa.Index("ix_dispatch_step_due", "status", "due_at"),)
