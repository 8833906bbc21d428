"""What the privacy coordination's routes take and answer."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class CloseRound(BaseModel):
    # Default: the round's retention_days. 0 purges at the next tick of the retention clock.
    retention_days: int | None = Field(default=None, ge=0, le=3650)


class Receipt(BaseModel):
    service: str
    removed: dict[str, int]
    verified: bool
    at: datetime


class RetentionStatus(BaseModel):
    round_id: str
    closed_at: datetime
    closed_by: str
    purge_after: datetime
    purge_requested_at: datetime | None
    receipts: list[Receipt]
    complete: bool  # every service has purged and verified
    waiting_for: list[str]


class PrivacyRequestIn(BaseModel):
    cpr: str = Field(min_length=10, max_length=11, repr=False, description="DDMMYYSSSS or DDMMYY-SSSS")
    kind: Literal["erasure", "objection"]
    reference: str | None = Field(default=None, max_length=100, pattern=r"^[A-Za-z0-9_./-]*$")


class PrivacyRequestStatus(BaseModel):
    request_id: uuid.UUID
    kind: str
    requested_at: datetime
    reference: str | None
    receipts: list[Receipt]
    complete: bool
    waiting_for: list[str]


class KeyStatus(BaseModel):
    active_key_id: str | None
    rows_per_key_id: dict[str, int]
    reencryption_pending: int  # rows under a key other than the active one
