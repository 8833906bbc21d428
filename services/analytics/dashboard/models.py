"""The dashboard's tables: targets a municipality sets (migration 0003) and the server-side
sessions of its browsers (migration a094, :mod:`.sessions`)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from services.analytics.models import Base


class DashboardTarget(Base):
    __tablename__ = "dashboard_target"

    kommunekode: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    question: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    indicator: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    value: Mapped[float]
    set_by: Mapped[str] = mapped_column(sa.Text)
    updated_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())


class DashboardSession(Base):
    """One browser's login: the cookie carries a random id, this row (keyed by the id's SHA-256)
    what it may do. Gone once expired, idle too long, logged out or purged."""

    __tablename__ = "dashboard_session"

    id_hash: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    subject: Mapped[str] = mapped_column(sa.Text)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(sa.Text))
    kommunekoder: Mapped[list[str]] = mapped_column(ARRAY(sa.Text))
    created_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())
    last_seen_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True), server_default=sa.func.now())
    expires_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    idle_seconds: Mapped[int]
