from __future__ import annotations

from typing import Any

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
    rows: list[ResponseRateRow]


class RoundOut(BaseModel):
    round_id: str
    questionnaire_id: str | None


class TablePage(BaseModel):
    """One page of a published table; ``columns`` lists every row's keys in order."""

    round_id: str | None = None
    suppression_threshold: int
    caution_below: int
    total: int = Field(description="rows matching the filters, all pages")
    offset: int
    limit: int
    columns: list[str]
    rows: list[dict[str, Any]]
