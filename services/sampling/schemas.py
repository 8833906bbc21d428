from __future__ import annotations

import uuid

from pydantic import BaseModel, Field


class StratumCount(BaseModel):
    kommunekode: str
    maalgruppe: str
    population: int
    eligible: int = Field(description="Population less those who must not be contacted")


class FrameSummary(BaseModel):
    round_id: str
    municipalities: int
    strata: list[StratumCount]


class DrawRequest(BaseModel):
    seed: int | None = Field(default=None, description="Recorded with the draw; same frame + seed = same sample")
    sample_per_stratum: int = Field(default=400, ge=1, le=100_000)


class StratumAllocation(BaseModel):
    stratum: str
    kommunekode: str
    maalgruppe: str
    population: int
    sample: int


class DrawResult(BaseModel):
    draw_id: uuid.UUID
    round_id: str
    seed: int
    sampled: int
    strata: list[StratumAllocation]
