"""Tables of the privacy coordination (schema ``ingest``)."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.ingest.models import Base


class RoundClosure(Base):
    """A round an operator closed; its identifiers are purged everywhere at ``purge_after``."""

    __tablename__ = "round_closure"

    round_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    closed_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    closed_by: Mapped[str] = mapped_column(sa.Text)
    purge_after: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    purge_requested_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))


class PurgeReceipt(Base):
    """One service's receipt for a round's purge (event round.purged)."""

    __tablename__ = "purge_receipt"

    round_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    service: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    removed: Mapped[dict] = mapped_column(JSONB)
    verified: Mapped[bool]
    purged_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class PrivacyRequest(Base):
    """A citizen's erasure or objection request as an operator entered it."""

    __tablename__ = "privacy_request"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(sa.Text)  # erasure | objection
    requested_by: Mapped[str] = mapped_column(sa.Text)
    requested_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))
    reference: Mapped[str | None] = mapped_column(sa.Text)  # the case number in the operator's system


class PrivacyReceipt(Base):
    __tablename__ = "privacy_receipt"

    request_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey(PrivacyRequest.id), primary_key=True)
    service: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    removed: Mapped[dict] = mapped_column(JSONB)
    verified: Mapped[bool]
    erased_at: Mapped[datetime] = mapped_column(sa.DateTime(timezone=True))


class BlockedCitizen(Base):
    """A citizen who objected: left out of every future extract (reason ``objection``).

    Kept as the pseudonym under each pseudonym key in use (never the CPR number): enough to
    recognise the person in a new extract, useless to anyone without the key."""

    __tablename__ = "blocked_citizen"

    pseudonym: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    request_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey(PrivacyRequest.id))
