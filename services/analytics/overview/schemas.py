"""The round overview as the API answers it (GET /rounds/{round_id}/overview). Every field is
described: the OpenAPI document is what an operator's tool reads (tests/analytics/overview)."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, Field


class DeliveryOut(BaseModel):
    """One accepted extract delivery of a municipality (ingest's delivery.accepted)."""

    delivery_id: str = Field(description="The delivery's id at ingest (GET /deliveries/{delivery_id} there)")
    delivered_by: str = Field(description="The delivering case system's client id")
    accepted_at: datetime = Field(description="When ingest accepted the delivery (UTC)")
    rows_read: int = Field(description="Rows read from the file (persons)")
    rows_accepted: int = Field(description="Rows that passed validation (persons)")
    rows_rejected: int = Field(description="Rows refused by validation (persons; ingest's report says why)")
    rows_excluded: int = Field(description="Valid rows left out of the population (persons), e.g. passive or protected "
                               "from research surveys (exclusions says why)")
    exclusions: dict[str, int] = Field(description="Excluded rows per reason (reason -> persons)")
    current: bool = Field(description="False: replaced by a later delivery")


class MessageCount(BaseModel):
    """The messages of one step and channel of a municipality (dispatch.progress)."""

    step: str = Field(description="invitation, reminder_1 or reminder_2")
    channel: str = Field(description="letter (Digital Post) or sms")
    statuses: dict[str, int] = Field(description="Messages per status, as dispatch's status shows them")
    planned: int = Field(description="Not sent yet: waiting for a contact or the schedule, planned, or being sent")
    sent: int = Field(description="Messages handed to the channel")
    failed: int = Field(description="Messages the channel refused for good")
    cancelled: int = Field(description="Messages not sent because fieldwork ended before they went")
    skipped: int = Field(description="Messages not sent: the citizen had answered or opted out, or there was no contact "
                         "(no phone for an SMS)")


class Figures(BaseModel):
    """One municipality's figures, or the round's total (kommunekode "total")."""

    kommunekode: str = Field(description='The municipality (3 digits), or "total" for the round')
    participates: bool = Field(True, description="Whether the round's definition names the municipality (all do when it "
                               "names none)")
    deliveries: list[DeliveryOut] = Field([], description="Its accepted deliveries, newest first")
    rows_read: int = Field(0, description="Rows read from the current delivery (persons)")
    rows_accepted: int = Field(0, description="Rows of the current delivery that passed validation (persons)")
    rows_rejected: int = Field(0, description="Rows of the current delivery refused by validation (persons)")
    rows_excluded: int = Field(0, description="Valid rows of the current delivery left out of the population (persons)")
    delivery_exclusions: dict[str, int] = Field({}, description="The current delivery's excluded rows per reason")
    frame_population: int | None = Field(None, description="Sampling's frame (None before the allocation is previewed)")
    frame_exclusions: dict[str, int] = Field({}, description="Citizens of the frame left out at sampling, per reason "
                                             "(the first that applies), e.g. recently_sampled")
    eligible: int | None = Field(None, description="Citizens the sample may be drawn from: the frame less its exclusions")
    sample: int | None = Field(None, description="The allocation's sample; the drawn sample once drawn")
    capped: bool = Field(False, description="True: the operator's maximum sample won over the answer target here")
    expected_answers: float | None = Field(None, description="The answers the allocation expects from the sample at the "
                                           "target groups' expected response rates (persons)")
    expected_rate: float | None = Field(None, description="expected_answers / sample, a proportion 0-1")
    target_answers: float | None = Field(None, description="The answers the allocation aims at (200)")
    messages: list[MessageCount] = Field([], description="Its messages per step and channel")
    waiting_for_contact: int = Field(0, description="Invitations whose contact ingest has not released yet")
    no_contact: int = Field(0, description="Invitations ingest had no contact for (never sent)")
    invited: int = Field(0, description="Citizens with a first message sent (analytics' invitation.sent facts)")
    answers: int = Field(0, description="Citizens who answered (persons)")
    response_rate: float | None = Field(None, description="answers / sample")
    answers_by_day: list[int] = Field([], description="Answers on day 0, 1, ... since the invitation")


class RoundOverview(BaseModel):
    """A round from definition to answers, per municipality and in total, as the services last
    reported it to analytics."""

    round_id: str = Field(description="The survey round (e.g. 2026-1)")
    name: str | None = Field(description="The round's name in its definition (None before round.defined)")
    revision: int | None = Field(description="The revision of the round's definition analytics holds")
    phase: str | None = Field(description="None: no round.defined has reached analytics")
    phase_changed_at: datetime | None = Field(description="When the round entered its phase (UTC)")
    waits_for: list[str] = Field(description="What the round waits for, in Danish")
    kommuner: list[str] = Field(description="Participating municipalities; empty: all 98")
    delivery_deadline: datetime | None = Field(None, description="When the extracts are due (UTC)")
    invitation_at: datetime | None = Field(None, description="When the invitations go out (UTC)")
    reminders_at: list[datetime] = Field([], description="When the reminders go out (UTC)")
    fieldwork_ends_at: datetime | None = Field(None, description="When fieldwork ends (UTC)")
    sampling_stage: str | None = Field(None, description="proposed | confirmed | drawn (sampling.progress)")
    forced: bool = Field(False, description="True: the sample was drawn before the round was ready (the operator forced it)")
    sending: str | None = Field(None, description="Dispatch's sending state (dispatch.progress)")
    days: list[date] = Field([], description="The dates of answers_by_day's days")
    municipalities: list[Figures] = Field(description="Each municipality's figures, by kommunekode")
    total: Figures = Field(description="The round's total: the municipalities' figures summed")
    sampling_as_of: datetime | None = Field(None, description="When sampling's figures were true (its last sampling.progress)")
    dispatch_as_of: datetime | None = Field(None, description="When dispatch's figures were true (its last dispatch.progress)")
