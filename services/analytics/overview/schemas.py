"""The round overview as the API answers it (GET /rounds/{round_id}/overview)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field


class DeliveryOut(BaseModel):
    delivery_id: str
    delivered_by: str = Field(description="The delivering case system's client id")
    accepted_at: datetime
    rows_read: int
    rows_accepted: int
    rows_rejected: int
    rows_excluded: int
    exclusions: dict[str, int]
    current: bool = Field(description="False: replaced by a later delivery")


class MessageCount(BaseModel):
    step: str
    channel: str
    statuses: dict[str, int] = Field(description="Messages per status, as dispatch's status shows them")
    planned: int = Field(description="Not sent yet: waiting for a contact or the schedule, planned, or being sent")
    sent: int
    failed: int
    cancelled: int
    skipped: int


class Representativeness(BaseModel):
    """How well the respondents represent the sample (domain/representativeness.py)."""

    sampled: int = Field(description="Citizens sampled (sample.drawn)")
    answered: int = Field(description="Of them, citizens who answered")
    r_indicator: float | None = Field(None, description="R = 1 - 2 S(rho): 1 when every group answers alike (Schouten et al. 2009)")
    cv: float | None = Field(None, description="Coefficient of variation of the response propensities, S(rho) / mean")
    partial_r: dict[str, float] = Field({}, description="Unconditional partial R-indicator per frame variable: how much it "
                                                         "makes response uneven")
    response_rates: dict[str, dict[str, float | None]] = Field(
        {}, description="Response rate (answered / sampled) per gender, age band and duration band; null where fewer than the "
                        "suppression threshold answered or did not answer")
    reading: str = Field("", description="A plain-language Danish reading")


class Figures(BaseModel):
    """One municipality's figures, or the round's total (kommunekode "total")."""

    kommunekode: str
    participates: bool = True
    deliveries: list[DeliveryOut] = []
    rows_read: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    rows_excluded: int = 0
    delivery_exclusions: dict[str, int] = {}
    frame_population: int | None = Field(None, description="Sampling's frame (None before the allocation is previewed)")
    frame_exclusions: dict[str, int] = {}
    eligible: int | None = None
    sample: int | None = Field(None, description="The allocation's sample; the drawn sample once drawn")
    capped: bool = False
    expected_answers: float | None = None
    expected_rate: float | None = None
    target_answers: float | None = Field(None, description="The answers the allocation aims at (200)")
    messages: list[MessageCount] = []
    waiting_for_contact: int = 0
    no_contact: int = 0
    invited: int = Field(0, description="Citizens with a first message sent (analytics' invitation.sent facts)")
    answers: int = 0
    response_rate: float | None = Field(None, description="answers / sample")
    answers_by_day: list[int] = Field([], description="Answers on day 0, 1, ... since the invitation")
    representativeness: Representativeness | None = Field(None, description="None before the sample has reached analytics")


class RoundOverview(BaseModel):
    round_id: str
    name: str | None
    revision: int | None
    phase: str | None = Field(description="None: no round.defined has reached analytics")
    phase_changed_at: datetime | None
    waits_for: list[str] = Field(description="What the round waits for, in Danish")
    kommuner: list[str] = Field(description="Participating municipalities; empty: all 98")
    delivery_deadline: datetime | None = None
    invitation_at: datetime | None = None
    reminders_at: list[datetime] = []
    fieldwork_ends_at: datetime | None = None
    sampling_stage: str | None = Field(None, description="proposed | confirmed | drawn (sampling.progress)")
    forced: bool = False
    sending: str | None = Field(None, description="Dispatch's sending state (dispatch.progress)")
    days: list[date] = Field([], description="The dates of answers_by_day's days")
    municipalities: list[Figures]
    total: Figures
    sampling_as_of: datetime | None = None
    dispatch_as_of: datetime | None = None
