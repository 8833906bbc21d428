"""KL's operator defines and runs a round (thin routers over ``services.ingest.rounds``).

``POST /rounds`` creates one, ``PATCH /rounds/{id}`` edits what its phase still allows,
``POST /rounds/{id}/schedule`` confirms the send dates and ``POST /rounds/{id}/end-fieldwork``
ends fieldwork early; ``POST /rounds/{id}/close`` (services.ingest.privacy.api) closes it. Every
change is published as round.defined. Errors say what is wrong (services.ingest.errors): 404 an
unknown round, 409 a field or an action the phase no longer allows (and why), 422 an
inconsistent definition.
"""

from __future__ import annotations

from fastapi import APIRouter, status

from services.ingest import rounds
from services.ingest.deps import Operator, RoundId, Settings, Uow
from services.ingest.schemas import RoundCreate, RoundFields, RoundSchedule, RoundView

router = APIRouter(tags=["rounds"])

RESPONSES = {
    404: {"description": "no such round"},
    409: {"description": "the round's phase no longer allows the change or the action (the detail says which and why)"},
    422: {"description": "the definition is inconsistent (the detail lists every problem)"},
}


@router.post(
    "/rounds",
    response_model=RoundView,
    status_code=status.HTTP_201_CREATED,
    summary="Define a round (phase planned): vendors can deliver for it from now on",
    responses={409: {"description": "already defined"}, 422: RESPONSES[422]},
)
async def create_round(uow: Uow, settings: Settings, body: RoundCreate, principal: Operator) -> RoundView:
    return await rounds.create_round(uow, settings, body, principal.subject)


@router.get("/rounds", response_model=list[RoundView], summary="Every round, newest first, with its phase")
async def list_rounds(uow: Uow, principal: Operator) -> list[RoundView]:
    return await rounds.list_rounds(uow)


@router.get("/rounds/{round_id}", response_model=RoundView, summary="A round's definition, phase and what it waits for", responses={404: RESPONSES[404]})
async def get_round(uow: Uow, round_id: RoundId, principal: Operator) -> RoundView:
    return await rounds.get_round(uow, round_id)


@router.patch(
    "/rounds/{round_id}",
    response_model=RoundView,
    summary="Change a round's definition (only what its phase still allows; null removes an optional date)",
    responses=RESPONSES,
)
async def edit_round(uow: Uow, body: RoundFields, round_id: RoundId, principal: Operator) -> RoundView:
    return await rounds.edit_round(uow, round_id, body, principal.subject)


@router.post(
    "/rounds/{round_id}/schedule",
    response_model=RoundView,
    summary="Confirm the send dates after the draw (fieldwork_scheduled): nothing is sent before invitation_at",
    responses=RESPONSES,
)
async def schedule_round(uow: Uow, round_id: RoundId, principal: Operator, body: RoundSchedule | None = None) -> RoundView:
    return await rounds.schedule_round(uow, round_id, body or RoundSchedule(), principal.subject)


@router.post(
    "/rounds/{round_id}/end-fieldwork",
    response_model=RoundView,
    summary="End fieldwork now (fieldwork_ended): nothing more is sent, answers are refused",
    responses=RESPONSES,
)
async def end_fieldwork(uow: Uow, round_id: RoundId, principal: Operator) -> RoundView:
    return await rounds.take_action(uow, round_id, "end_fieldwork", principal.subject)
