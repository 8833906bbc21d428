from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator


Scope = Literal["rates", "totals", "all"]
SCOPE_DESCRIPTION = (
    "what the release publishes: rates (who answered, never what: response rates only, no indicator rows), "
    "totals (national cells and each municipality's total, every question) or all (every cell)"
)


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
    scope: Scope = Field(description=SCOPE_DESCRIPTION)
    rows: list[ResponseRateRow]


class ReleaseIn(BaseModel):
    phase: Literal["preliminary", "final"]
    scope: Scope | None = Field(None, description=SCOPE_DESCRIPTION + "; a preliminary's default is the "
                                "configured preliminary scope, a final is always all")

    @model_validator(mode="after")
    def _final_publishes_everything(self) -> ReleaseIn:
        if self.phase == "final" and self.scope not in (None, "all"):
            raise ValueError('a final release publishes every cell: its scope is "all" (or leave scope out)')
        return self


class ReleaseOut(BaseModel):
    round_id: str
    release: int = Field(description="1, 2, 3 ... per round; reads are served the latest")
    phase: Literal["preliminary", "final"]
    built_at: datetime = Field(description="when the release was built (UTC)")
    version: int = Field(description="the round's data version the release was built at")
    scope: Scope = Field(description=SCOPE_DESCRIPTION)
    answers_published: bool = Field(description="whether the release publishes answers (false for a rates release)")


class RoundOut(BaseModel):
    round_id: str
    questionnaire_id: str | None


class TablePage(BaseModel):
    """One page of a published table; ``columns`` lists every row's keys in order."""

    round_id: str | None = None
    release: int | None = Field(None, description="the release the rows are from (null where rows come from several rounds' releases: see each row)")
    phase: Literal["preliminary", "final"] | None = None
    built_at: datetime | None = Field(None, description="when the release was built (UTC)")
    scope: Scope | None = Field(None, description=SCOPE_DESCRIPTION + "; a rates release's indicator tables are empty")
    suppression_threshold: int
    caution_below: int
    total: int = Field(description="rows matching the filters, all pages")
    offset: int
    limit: int
    columns: list[str]
    rows: list[dict[str, Any]]
