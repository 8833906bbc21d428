from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastapi import APIRouter, Depends, HTTPException, Request, status

from services.sampling import service
from services.sampling.schemas import (
    AllocationRequest,
    AllocationView,
    DrawMargins,
    DrawRequest,
    DrawResult,
    FrameSummary,
    OverridesRequest,
)
from shared.app import RoundId
from shared.auth import Principal, require_scopes

router = APIRouter(tags=["sampling"])
# Round-wide: a draw or an allocation spans every municipality of the round, so only a caller
# acting for all of them (KL's operators) may run it.
ADMIN = Depends(require_scopes("rounds:admin", "kommuner:all"))
T = TypeVar("T")

_ERRORS: dict[type[Exception], tuple[int, str]] = {
    service.DrawExists: (status.HTTP_409_CONFLICT, "round {round_id} already has a draw"),
    service.StaleAllocation: (
        status.HTTP_409_CONFLICT,
        "the frame of round {round_id} changed since the allocation was computed: preview it again",
    ),
    service.NoAllocation: (status.HTTP_404_NOT_FOUND, "round {round_id} has no allocation yet: POST one first"),
    service.EmptyFrame: (422, "round {round_id} has no population yet"),
    service.InvalidAllocation: (422, "{error}"),
    service.RoundNotDefined: (
        status.HTTP_404_NOT_FOUND,
        "round {round_id} is not defined: KL's operator creates it at ingest (POST /rounds), and sampling learns it "
        "from round.defined",
    ),
    service.RoundRefused: (status.HTTP_409_CONFLICT, "{error}"),
}
RESPONSES = {
    404: {"description": "the round is not defined, or has no allocation"},
    409: {
        "description": "already drawn, the frame changed since the allocation, the round's phase is past the draw, or "
        "(a draw) not every participating municipality has delivered before the deadline and force is not set"
    },
    422: {"description": "empty frame, or rules/overrides break a hard rule"},
}


async def _run(request: Request, round_id: str, call: Callable[..., Awaitable[T]]) -> T:
    """One unit of work; domain outcomes become HTTP errors here and nowhere else."""
    async with request.app.state.runtime.uow() as uow:
        try:
            return await call(uow)
        except tuple(_ERRORS) as exc:
            code, message = _ERRORS[type(exc)]
            raise HTTPException(code, detail=message.format(round_id=round_id, error=exc)) from None


@router.get("/rounds/{round_id}/frame", response_model=FrameSummary, summary="The sampling frame per stratum, with exclusions")
async def get_frame(request: Request, round_id: RoundId, principal: Principal = ADMIN) -> FrameSummary:
    return await _run(request, round_id, lambda uow: service.frame_summary(uow, request.app.state.settings, round_id))


@router.post(
    "/rounds/{round_id}/allocation",
    response_model=AllocationView,
    summary="Compute and store a proposed allocation from rules (before the draw)",
    responses=RESPONSES,
)
async def preview_allocation(
    request: Request,
    round_id: RoundId,
    body: AllocationRequest | None = None,
    principal: Principal = ADMIN,
) -> AllocationView:
    body = body or AllocationRequest()
    return await _run(
        request, round_id, lambda uow: service.preview_allocation(uow, request.app.state.settings, round_id, body, principal.subject)
    )


@router.get("/rounds/{round_id}/allocation", response_model=AllocationView, summary="The round's allocation", responses=RESPONSES)
async def get_allocation(request: Request, round_id: RoundId, principal: Principal = ADMIN) -> AllocationView:
    return await _run(request, round_id, lambda uow: service.get_allocation(uow, round_id))


@router.patch(
    "/rounds/{round_id}/allocation",
    response_model=AllocationView,
    summary="Operator overrides of n_h, merged into the existing ones (sample null drops one)",
    responses=RESPONSES,
)
async def patch_allocation(
    request: Request, body: OverridesRequest, round_id: RoundId, principal: Principal = ADMIN
) -> AllocationView:
    return await _run(request, round_id, lambda uow: service.set_overrides(uow, round_id, body, principal.subject, replace_all=False))


@router.put(
    "/rounds/{round_id}/allocation/overrides",
    response_model=AllocationView,
    summary="Replace all operator overrides of n_h",
    responses=RESPONSES,
)
async def put_overrides(
    request: Request, body: OverridesRequest, round_id: RoundId, principal: Principal = ADMIN
) -> AllocationView:
    return await _run(request, round_id, lambda uow: service.set_overrides(uow, round_id, body, principal.subject, replace_all=True))


@router.post(
    "/rounds/{round_id}/allocation/confirm",
    response_model=AllocationView,
    summary="Confirm the allocation for the draw",
    responses=RESPONSES,
)
async def confirm_allocation(request: Request, round_id: RoundId, principal: Principal = ADMIN) -> AllocationView:
    return await _run(request, round_id, lambda uow: service.confirm_allocation(uow, round_id, principal.subject))


@router.post(
    "/rounds/{round_id}/draws",
    response_model=DrawResult,
    status_code=status.HTTP_201_CREATED,
    summary="Draw the round's sample (once per round) from its confirmed or latest allocation",
    responses=RESPONSES,
)
async def create_draw(
    request: Request, round_id: RoundId, body: DrawRequest | None = None, principal: Principal = ADMIN
) -> DrawResult:
    body = body or DrawRequest()
    result = await _run(
        request,
        round_id,
        lambda uow: service.draw(
            uow,
            request.app.state.settings,
            round_id=round_id,
            seed=body.seed,
            sample_per_stratum=body.sample_per_stratum,
            drawn_by=principal.subject,
            force=body.force,
        ),
    )
    # The events were written to the bulk outbox in SQL, not through uow.publish: wake the relays.
    request.app.state.runtime.nudge_relays()
    return result


@router.get(
    "/rounds/{round_id}/draws/{draw_id}/margins",
    response_model=DrawMargins,
    summary="Population margins of the drawn frame per municipality (for post-stratification / raking)",
)
async def get_margins(
    request: Request, draw_id: uuid.UUID, round_id: RoundId, principal: Principal = ADMIN
) -> DrawMargins:
    margins = await _run(request, round_id, lambda uow: service.draw_margins(uow, round_id, draw_id))
    if margins is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no draw {draw_id} in round {round_id}")
    return margins
