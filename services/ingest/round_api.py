"""KL's operator defines and runs a round (thin routers over ``services.ingest.rounds``).

``POST /rounds`` creates one, ``PATCH /rounds/{id}`` edits what its phase still allows,
``POST /rounds/{id}/schedule`` confirms the send dates and ``POST /rounds/{id}/end-fieldwork``
ends fieldwork early; ``POST /rounds/{id}/close`` (services.ingest.privacy.api) closes it. Every
change is published as round.defined. Errors say what is wrong: 404 an unknown round, 409 a
field or an action the phase no longer allows (and why), 422 an inconsistent definition.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

from fastapi import APIRouter, Depends, HTTPException, Request, status

from services.ingest import rounds
from services.ingest.domain.rounds import FieldLocked, RoundRuleError, TransitionRefused
from services.ingest.schemas import RoundCreate, RoundFields, RoundSchedule, RoundView
from shared.app import RoundId
from shared.auth import Principal, require_scopes

router = APIRouter(tags=["rounds"])
Operator = Annotated[Principal, Depends(require_scopes("rounds:admin", "kommuner:all"))]
T = TypeVar("T")

RESPONSES = {
    404: {"description": "no such round"},
    409: {"description": "the round's phase no longer allows the change or the action (the detail says which and why)"},
    422: {"description": "the definition is inconsistent (the detail lists every problem)"},
}


async def _run(request: Request, call: Callable[..., Awaitable[T]]) -> T:
    """One unit of work; the rules' refusals become HTTP errors here and nowhere else."""
    async with request.app.state.runtime.uow() as uow:
        try:
            return await call(uow)
        except rounds.RoundUnknown as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
        except rounds.RoundExists as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=f"round {exc} is already defined: PATCH it") from None
        except (FieldLocked, TransitionRefused) as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, detail={"message": str(exc), "problems": exc.problems}) from None
        except RoundRuleError as exc:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, detail={"message": str(exc), "problems": exc.problems}
            ) from None


@router.post(
    "/rounds",
    response_model=RoundView,
    status_code=status.HTTP_201_CREATED,
    summary="Define a round (phase planned): vendors can deliver for it from now on",
    responses={409: {"description": "already defined"}, 422: RESPONSES[422]},
)
async def create_round(request: Request, body: RoundCreate, principal: Operator) -> RoundView:
    settings = request.app.state.settings
    return await _run(request, lambda uow: rounds.create_round(uow, settings, body, principal.subject))


@router.get("/rounds", response_model=list[RoundView], summary="Every round, newest first, with its phase")
async def list_rounds(request: Request, principal: Operator) -> list[RoundView]:
    return await _run(request, rounds.list_rounds)


@router.get("/rounds/{round_id}", response_model=RoundView, summary="A round's definition, phase and what it waits for", responses={404: RESPONSES[404]})
async def get_round(request: Request, round_id: RoundId, principal: Operator) -> RoundView:
    return await _run(request, lambda uow: rounds.get_round(uow, round_id))


@router.patch(
    "/rounds/{round_id}",
    response_model=RoundView,
    summary="Change a round's definition (only what its phase still allows; null removes an optional date)",
    responses=RESPONSES,
)
async def edit_round(request: Request, body: RoundFields, round_id: RoundId, principal: Operator) -> RoundView:
    return await _run(request, lambda uow: rounds.edit_round(uow, round_id, body, principal.subject))


@router.post(
    "/rounds/{round_id}/schedule",
    response_model=RoundView,
    summary="Confirm the send dates after the draw (fieldwork_scheduled): nothing is sent before invitation_at",
    responses=RESPONSES,
)
async def schedule_round(request: Request, round_id: RoundId, principal: Operator, body: RoundSchedule | None = None) -> RoundView:
    return await _run(request, lambda uow: rounds.schedule_round(uow, round_id, body or RoundSchedule(), principal.subject))


@router.post(
    "/rounds/{round_id}/end-fieldwork",
    response_model=RoundView,
    summary="End fieldwork now (fieldwork_ended): nothing more is sent, answers are refused",
    responses=RESPONSES,
)
async def end_fieldwork(request: Request, round_id: RoundId, principal: Operator) -> RoundView:
    return await _run(request, lambda uow: rounds.take_action(uow, round_id, "end_fieldwork", principal.subject))
