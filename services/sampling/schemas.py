from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.sampling.domain import AllocationRules, SizePoint
from services.sampling.domain.allocation import ResponseRate
from services.sampling.domain.draw import SEED_BITS

ExclusionCounts = dict[str, int]  # reason -> citizens (see domain.ExclusionReason)


class StratumCount(BaseModel):
    kommunekode: str
    maalgruppe: str
    population: int = Field(description="Citizens in the delivered frame")
    eligible: int = Field(description="Population less those who must not be contacted")
    excluded: ExclusionCounts = Field(default_factory=dict, description="Excluded citizens by first reason")


class FrameSummary(BaseModel):
    round_id: str
    municipalities: int
    recent_rounds: int = Field(description="Citizens sampled in this many earlier rounds are excluded")
    exclusions: ExclusionCounts = Field(description="Each excluded citizen once, under the first reason")
    exclusion_flags: ExclusionCounts = Field(description="Every reason that applied (a citizen may count twice)")
    strata: list[StratumCount]


# --- allocation ------------------------------------------------------------------------------


class RulesOverride(BaseModel):
    """Any subset of the allocation rules; the rest comes from the service's defaults.

    `response_rates` are merged per target group, so the rates observed in earlier rounds
    (from analytics) can be given for the groups that have them."""

    model_config = ConfigDict(extra="forbid")

    min_sample: int | None = Field(None, ge=0)
    max_sample: int | None = Field(None, ge=1)
    size_curve: tuple[SizePoint, ...] | None = None
    size_interpolation: Literal["log_linear", "step"] | None = None
    response_rates: dict[str, ResponseRate] | None = None
    min_expected_answers: float | None = Field(None, ge=0)
    min_expected_answers_per_stratum: float | None = Field(None, ge=0)
    allocation_power: float | None = Field(None, ge=0, le=1)
    max_sample_is_cap: bool | None = Field(
        None, description="max_sample wins over the answer minimums (the default when max_sample is given here)"
    )


class AllocationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: RulesOverride = Field(default_factory=RulesOverride)
    recent_rounds: int | None = Field(None, ge=0, description="Exclude citizens sampled in the last N rounds")


class StratumOverride(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kommunekode: str
    maalgruppe: str
    sample: int | None = Field(description="n_h set by the operator; null removes the override")


class OverridesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    overrides: list[StratumOverride]


class AllocationWarningOut(BaseModel):
    code: str
    maalgruppe: str | None
    shortfall: float = Field(description="Expected answers missing (0 for sample-size warnings)")
    message: str


class StratumAllocationOut(BaseModel):
    stratum: str
    kommunekode: str
    maalgruppe: str
    population: int
    excluded: int
    eligible: int = Field(description="N_h: what the draw samples from")
    sample: int = Field(description="n_h")
    response_rate: float
    expected_answers: float
    inclusion_probability: float = Field(description="π = n_h / N_h")
    overridden: bool


class CapConflictOut(BaseModel):
    """The operator's max_sample overrode an answer rule in this municipality: the cap won."""

    rule: str = Field(description="The rule the cap overrode: min_expected_answers or min_expected_answers_per_stratum")
    cap: int = Field(description="The operator's max_sample: the municipality's sample")
    sample_needed: int = Field(description="The sample the rule asked for")
    expected_answers: float = Field(description="Expected answers at the cap")
    expected_answers_needed: float
    decided_by: str | None = None
    decided_at: datetime | None = None


class MunicipalityAllocationOut(BaseModel):
    kommunekode: str
    population: int
    eligible: int
    target_sample: int
    sample: int
    expected_answers: float
    max_expected_answers: float
    shortfall: float
    warnings: list[AllocationWarningOut]
    cap_conflict: CapConflictOut | None = None


class AllocationTotals(BaseModel):
    population: int
    eligible: int
    sample: int
    expected_answers: float


class AllocationView(BaseModel):
    round_id: str
    status: Literal["proposed", "confirmed"]
    rules: AllocationRules
    recent_rounds: int
    exclusions: ExclusionCounts
    totals: AllocationTotals
    municipalities: list[MunicipalityAllocationOut]
    strata: list[StratumAllocationOut]
    updated_by: str
    updated_at: datetime | None = None
    confirmed_by: str | None = None


# --- draw ------------------------------------------------------------------------------------


class DrawRequest(BaseModel):
    seed: int | None = Field(
        default=None, ge=0, lt=1 << SEED_BITS, description="Recorded with the draw; same frame + seed = same sample"
    )
    # Kept for the first callers (demo, e2e): n_h = min(sample_per_stratum, N_h) in every
    # stratum, applied as operator overrides on top of the round's allocation.
    sample_per_stratum: int | None = Field(default=None, ge=0, le=100_000)
    force: bool = Field(
        default=False,
        description="Draw before every participating municipality has delivered and before the delivery deadline "
        "(recorded with the draw: who, and what was missing)",
    )


class DrawStratum(BaseModel):
    stratum: str
    kommunekode: str
    maalgruppe: str
    population: int = Field(description="Eligible N_h")
    sample: int
    inclusion_probability: float
    design_weight: float


class DrawResult(BaseModel):
    draw_id: uuid.UUID
    round_id: str
    seed: int
    forced: bool = Field(default=False, description="Drawn with force=true before the round was ready")
    missing: list[str] = Field(default_factory=list, description="Participating municipalities without a delivery")
    sampled: int
    population: int
    exclusions: ExclusionCounts
    strata: list[DrawStratum]


class MunicipalityMargins(BaseModel):
    kommunekode: str
    population: int
    # variable -> band -> eligible citizens; maalgruppe, gender, age_band, duration_band
    margins: dict[str, dict[str, int]]


class DrawMargins(BaseModel):
    draw_id: uuid.UUID
    round_id: str
    municipalities: list[MunicipalityMargins]
