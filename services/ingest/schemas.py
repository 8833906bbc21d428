"""Ingest's API contracts."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ExtractRow(BaseModel):
    """One citizen as a case system exports it (JSON deliveries; files map to the same fields)."""

    model_config = ConfigDict(extra="forbid")

    cpr: str = Field(description="CPR number, DDMMYY-SSSS or DDMMYYSSSS")
    ydelse: str = Field(description="The benefit, exactly as the case system names it")
    overgangsdato: date = Field(description="Date of transition to the current benefit")
    seneste_samtale: date | None = Field(default=None, description="Date of the latest conversation")
    forloeb_afsluttet: bool | None = None
    telefon: str | None = None
    navn: str | None = None
    passiv: bool = False
    forskerbeskyttet: bool = False


class JsonExtract(BaseModel):
    reference_date: date
    policy: Literal["accept_valid", "reject_all"] = "accept_valid"
    rows: list[ExtractRow]


class RowIssue(BaseModel):
    row: int
    column: str
    message: str


class DeliveryReport(BaseModel):
    delivery_id: uuid.UUID | None
    round_id: str
    kommunekode: str
    status: Literal["accepted", "rejected", "superseded"]
    rows_read: int
    rows_valid: int
    rows_rejected: int
    rows_excluded: int
    exclusions: dict[str, int] = Field(default_factory=dict, description="Excluded rows per reason")
    errors: list[RowIssue] = Field(default_factory=list)
    supersedes: uuid.UUID | None = None
    created_at: datetime | None = None
