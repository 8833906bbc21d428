"""The dashboard's one table: targets a municipality sets (migration 0003)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
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
