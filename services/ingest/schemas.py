"""Ingest's API contracts."""

from __future__ import annotations

import uuid
from datetime import date, datetime, time
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from services.ingest.domain import kommunekode as kommunekoder
from shared.events import ROUND_ID_PATTERN, SURVEY_LANGUAGES


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
    fritaget_digital_post: bool = Field(
        default=False, description="Exempt from Digital Post: letters and the paper questionnaire go by physical post"
    )
    visitationskategori: str | None = Field(
        default=None, description="The citizen's visitation category (e.g. Jobparat, Aktivitetsparat, Jobafklaringsforløb)"
    )


class JsonExtract(BaseModel):
    reference_date: date
    policy: Literal["accept_valid", "reject_all"] = "accept_valid"
    rows: list[ExtractRow]


class RowIssue(BaseModel):
    """One problem in one row, never with a full CPR number. ``column`` is the canonical column
    name, or None when the row as a whole is wrong."""

    data_row: int | None = Field(
        default=None, description="The data row, counted from 1 under the header (what a vendor counts in its export)"
    )
    line: int | None = Field(
        default=None, description="The line in a text editor, the row in Excel, the position in a JSON batch from 1"
    )
    row: int = Field(description="The same as line")
    column: str | None
    message: str


class Classification(BaseModel):
    """How many citizens one classification decision placed: (benefit, category) -> target group."""

    ydelse: str = Field(description="The benefit's name in the maalgruppe mapping")
    visitationskategori: str | None = Field(description="The visitation category the decision used, if any")
    maalgruppe: str
    citizens: int


class DeliveryReport(BaseModel):
    delivery_id: uuid.UUID | None
    round_id: str
    kommunekode: str
    status: Literal["accepted", "rejected", "superseded", "validated"] = Field(
        description="validated: a dry run, validated and reported in full, nothing stored"
    )
    rows_read: int
    rows_valid: int
    rows_rejected: int
    rows_excluded: int
    mapping_version: str | None = Field(default=None, description="Version of the maalgruppe mapping table used")
    exclusions: dict[str, int] = Field(default_factory=dict, description="Excluded rows per reason")
    maalgrupper: dict[str, int] = Field(default_factory=dict, description="Stored citizens per target group")
    classifications: list[Classification] = Field(
        default_factory=list, description="Citizens per classification decision: (benefit, category) -> target group"
    )
    replacement_refused: str | None = Field(
        default=None, description="Dry run: why a real delivery would be refused as replacing too many citizens"
    )
    errors_total: int = 0
    errors: list[RowIssue] = Field(default_factory=list, description="The first 1000 row errors")
    warnings_total: int = 0
    warnings: list[RowIssue] = Field(default_factory=list, description="The first 1000 warnings (e.g. unusable phone)")
    supersedes: uuid.UUID | None = None
    created_at: datetime | None = None


# validated: a dry run ended (validated and reported, nothing stored); rejected: reject_all with
# row errors, or a replacement that would shrink the frame without confirmation.
JobStatus = Literal["queued", "running", "succeeded", "validated", "rejected", "failed"]


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
    submitted_by: str | None = None
    file_name: str | None = None
    dry_run: bool = False
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
    classifications: list[Classification] = Field(default_factory=list)
    replacement_refused: str | None = None
    errors_total: int = 0
    errors_by_column: dict[str, int] = Field(default_factory=dict)
    errors: list[RowIssue] = Field(default_factory=list)
    warnings_total: int = 0
    warnings: list[RowIssue] = Field(default_factory=list)
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None


class JobSummary(BaseModel):
    """One upload job in a round's listing (the operator's view; no row errors)."""

    job_id: uuid.UUID
    kommunekode: str
    submitted_by: str
    file_name: str | None
    file_format: str
    file_bytes: int
    profile: str
    dry_run: bool
    status: JobStatus
    progress: JobProgress
    error: str | None
    delivery_id: uuid.UUID | None
    created_at: datetime
    finished_at: datetime | None


class DeliverySummary(BaseModel):
    """One delivery in a round's listing."""

    delivery_id: uuid.UUID
    kommunekode: str
    delivered_by: str
    status: str
    job_id: uuid.UUID | None
    file_name: str | None = None
    rows_read: int
    rows_valid: int
    rows_rejected: int
    rows_excluded: int
    mapping_version: str
    supersedes: uuid.UUID | None
    created_at: datetime


class ProfileRegistration(BaseModel):
    """A named column profile: a built-in profile's headers plus the vendor's own."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="lowercase letters, digits, '_', '.', '-'; registering a name again makes a new version")
    base: str = Field("standard", description="The built-in profile it extends: standard, momentum or fasit")
    display_name: str | None = None
    columns: dict[str, list[str]] = Field(
        description='Canonical column -> the extra headers that mean it, e.g. {"overgangsdato": ["Dato for skift"]}'
    )


# --- the round (KL's operator) ----------------------------------------------------------------------


class SendingWindowIn(BaseModel):
    """When messages may go out, Danish local time (Europe/Copenhagen)."""

    model_config = ConfigDict(extra="forbid")

    start: time = time(8, 0)
    end: time = time(20, 0)

    @field_validator("start", "end")
    @classmethod
    def local_time(cls, value: time) -> time:
        # A time of day in Danish local time: an offset ("08:00Z") would make it another day's time.
        if value.tzinfo is not None:
            raise ValueError("a local time of day (HH:MM:SS) without an offset")
        return value


class SendingWindowOut(BaseModel):
    """The sending window as answered: local times of day (HH:MM:SS, Europe/Copenhagen, no offset)."""

    start: str = Field(pattern=r"^\d{2}:\d{2}:\d{2}(\.\d+)?$")
    end: str = Field(pattern=r"^\d{2}:\d{2}:\d{2}(\.\d+)?$")


class RoundFields(BaseModel):
    """The parts of a round's definition an operator sets. Times are ISO 8601 with an offset
    (UTC or Danish time); a time without one is refused."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    reference_date: date | None = None
    maalgruppe_mapping_version: str | None = Field(default=None, pattern=r"^v\d+$", description="e.g. v2 (GET /maalgrupper)")
    questionnaire_version: str | None = Field(default=None, max_length=100)
    kommuner: list[str] | None = Field(
        default=None, description="Participating kommunekoder, 3 digits (101) or 4 (0101), kept as 3; empty: all 98"
    )
    delivery_deadline: AwareDatetime | None = None
    invitation_at: AwareDatetime | None = None
    reminders_at: list[AwareDatetime] | None = Field(default=None, max_length=2)
    fieldwork_ends_at: AwareDatetime | None = None
    sending_window: SendingWindowIn | None = None
    retention_days: int | None = Field(default=None, ge=1, le=3650)
    languages: list[str] | None = Field(
        default=None, max_length=len(SURVEY_LANGUAGES),
        description=f"The languages citizens may answer in, BCP 47 ({', '.join(SURVEY_LANGUAGES)}); empty: every "
        "language whose translations meet translation_status. Danish is always offered.",
    )
    translation_status: Literal["draft", "reviewed"] | None = Field(
        default=None, description="The review status a translation needs to be offered: reviewed offers only translations "
        "a person has checked; draft (the default) also drafts",
    )

    @field_validator("kommuner")
    @classmethod
    def _kommunekoder(cls, value: list[str] | None) -> list[str] | None:
        """4-digit codes read as their 3-digit form; anything else stays for the round's rules to name."""
        if value is None:
            return None
        return [kommunekoder.parse(k) if kommunekoder.is_kommunekode(k) else k for k in value]


class RoundCreate(RoundFields):
    round_id: str = Field(pattern=ROUND_ID_PATTERN)
    name: str = Field(min_length=1, max_length=200)
    reference_date: date


class RoundSchedule(BaseModel):
    """Confirm the send dates; any given here replace the round's before the check."""

    model_config = ConfigDict(extra="forbid")

    invitation_at: AwareDatetime | None = None
    reminders_at: list[AwareDatetime] | None = Field(default=None, max_length=2)
    fieldwork_ends_at: AwareDatetime | None = None


class RoundView(BaseModel):
    round_id: str
    revision: int
    name: str
    reference_date: date
    maalgruppe_mapping_version: str
    questionnaire_version: str | None
    kommuner: list[str]
    delivery_deadline: datetime | None
    invitation_at: datetime | None
    reminders_at: list[datetime]
    fieldwork_ends_at: datetime | None
    sending_window: SendingWindowOut
    retention_days: int
    languages: list[str]
    translation_status: str
    phase: str
    phase_changed_at: datetime
    implicit: bool
    created_by: str
    created_at: datetime
    updated_by: str
    updated_at: datetime
    next_actions: list[str] = Field(description="What the round waits for, in words")
