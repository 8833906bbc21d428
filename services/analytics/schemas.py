from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field


class ResponseRateRow(BaseModel):
    kommunekode: str = Field(description='Municipality code, or "national" for the whole country')
    invited: int | None
    answers: int | None = Field(description="null when suppressed")
    response_rate: float | None
    suppressed: bool
    caution: bool = Field(False, description="published, but on few answers: read with caution")


class ResponseRates(BaseModel):
    round_id: str
    suppression_threshold: int
    release: int = Field(description="the release these figures are from (1, 2, 3 ... per round)")
    phase: Literal["preliminary", "final"]
    built_at: datetime = Field(description="when the release was built (UTC)")
    rows: list[ResponseRateRow]


class ReleaseIn(BaseModel):
    phase: Literal["preliminary", "final"]


class ReleaseOut(BaseModel):
    round_id: str
    release: int = Field(description="1, 2, 3 ... per round; reads are served the latest")
    phase: Literal["preliminary", "final"]
    built_at: datetime = Field(description="when the release was built (UTC)")
    version: int = Field(description="the round's data version the release was built at")


class RoundOut(BaseModel):
    round_id: str
    questionnaire_id: str | None


class TablePage(BaseModel):
    """One page of a published table; ``columns`` lists every row's keys in order."""

    round_id: str | None = None
    release: int | None = Field(None, description="the release the rows are from (null where rows come from several rounds' releases: see each row)")
    phase: Literal["preliminary", "final"] | None = None
    built_at: datetime | None = Field(None, description="when the release was built (UTC)")
    suppression_threshold: int
    caution_below: int
    total: int = Field(description="rows matching the filters, all pages")
    offset: int
    limit: int
    columns: list[str]
    rows: list[dict[str, Any]]
