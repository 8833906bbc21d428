from __future__ import annotations

from pydantic import BaseModel, Field


class ResponseRateRow(BaseModel):
    kommunekode: str = Field(description='Municipality code, or "national" for the whole country')
    invited: int | None
    answers: int | None = Field(description="null when suppressed")
    response_rate: float | None
    suppressed: bool


class ResponseRates(BaseModel):
    round_id: str
    suppression_threshold: int
    rows: list[ResponseRateRow]
