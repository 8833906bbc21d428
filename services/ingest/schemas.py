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
    """One problem in one row. ``row`` is the number a person sees in the file (the line in a text
    editor, the row in Excel, the position in a JSON batch from 1); ``column`` is the canonical
    column name, or None when the row as a whole is wrong. Never carries a full CPR number."""

    row: int
    column: str | None
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
    mapping_version: str | None = Field(default=None, description="Version of the maalgruppe mapping table used")
    exclusions: dict[str, int] = Field(default_factory=dict, description="Excluded rows per reason")
    maalgrupper: dict[str, int] = Field(default_factory=dict, description="Stored citizens per target group")
    errors_total: int = 0
    errors: list[RowIssue] = Field(default_factory=list, description="The first 1000 row errors")
    warnings_total: int = 0
    warnings: list[RowIssue] = Field(default_factory=list, description="The first 1000 warnings (e.g. unusable phone)")
    supersedes: uuid.UUID | None = None
    created_at: datetime | None = None


JobStatus = Literal["queued", "running", "succeeded", "rejected", "failed"]


class JobAccepted(BaseModel):
    job_id: uuid.UUID
    status: JobStatus
    status_url: str


class JobProgress(BaseModel):
    rows_read: int
    rows_valid: int
    rows_rejected: int
    rows_excluded: int


class JobReport(BaseModel):
    """An upload job: progress while it runs, the delivery's report when it has ended."""

    job_id: uuid.UUID
    round_id: str
    kommunekode: str
    status: JobStatus
    profile: str
    policy: str
    file_format: str
    file_bytes: int
    progress: JobProgress
    error: str | None = Field(default=None, description="Why the file as a whole failed (status failed)")
    delivery_id: uuid.UUID | None = None
    supersedes: uuid.UUID | None = None
    mapping_version: str | None = None
    exclusions: dict[str, int] = Field(default_factory=dict)
    maalgrupper: dict[str, int] = Field(default_factory=dict)
    errors_total: int = 0
    errors_by_column: dict[str, int] = Field(default_factory=dict)
    errors: list[RowIssue] = Field(default_factory=list)
    warnings_total: int = 0
    warnings: list[RowIssue] = Field(default_factory=list)
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
