"""Sampling's HTTP API: thin routers over service functions, for KL's operator (``Operator``:
round-wide work). The frame with its exclusions; the allocation, previewed from rules, adjusted
by the operator's overrides and confirmed; the draw, once per round; the drawn frame's margins.
The service functions' refusals answer as ``services.sampling.errors`` says."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException, status

from services.sampling import service
from services.sampling.deps import Operator, RoundId, Settings, Uow
from services.sampling.errors import RESPONSES
from services.sampling.schemas import (
    AllocationRequest,
    AllocationView,
    DrawMargins,
    DrawRequest,
    DrawResult,
    FrameSummary,
    OverridesRequest,
)

router = APIRouter(tags=["sampling"])


@router.get("/rounds/{round_id}/frame", response_model=FrameSummary, summary="The sampling frame per stratum, with exclusions")
async def get_frame(uow: Uow, settings: Settings, round_id: RoundId, principal: Operator) -> FrameSummary:
    return await service.frame_summary(uow, settings, round_id)


@router.post(
    "/rounds/{round_id}/allocation",
    response_model=AllocationView,
    summary="Compute and store a proposed allocation from rules (before the draw)",
    responses=RESPONSES,
)
async def preview_allocation(
    uow: Uow, settings: Settings, round_id: RoundId, principal: Operator, body: AllocationRequest | None = None
) -> AllocationView:
    return await service.preview_allocation(uow, settings, round_id, body or AllocationRequest(), principal.subject)


@router.get("/rounds/{round_id}/allocation", response_model=AllocationView, summary="The round's allocation", responses=RESPONSES)
async def get_allocation(uow: Uow, round_id: RoundId, principal: Operator) -> AllocationView:
    return await service.get_allocation(uow, round_id)


@router.patch(
    "/rounds/{round_id}/allocation",
    response_model=AllocationView,
    summary="Operator overrides of n_h, merged into the existing ones (sample null drops one)",
    responses=RESPONSES,
)
async def patch_allocation(uow: Uow, body: OverridesRequest, round_id: RoundId, principal: Operator) -> AllocationView:
    return await service.set_overrides(uow, round_id, body, principal.subject, replace_all=False)


@router.put("/rounds/{round_id}/allocation/overrides", response_model=AllocationView, summary="Replace all operator overrides of n_h",
            responses=RESPONSES)
async def put_overrides(uow: Uow, body: OverridesRequest, round_id: RoundId, principal: Operator) -> AllocationView:
    return await service.set_overrides(uow, round_id, body, principal.subject, replace_all=True)


@router.post(
    "/rounds/{round_id}/allocation/confirm",
    response_model=AllocationView,
    summary="Confirm the allocation for the draw",
    responses=RESPONSES,
)
async def confirm_allocation(uow: Uow, round_id: RoundId, principal: Operator) -> AllocationView:
    return await service.confirm_allocation(uow, round_id, principal.subject)


@router.post(
    "/rounds/{round_id}/draws",
    response_model=DrawResult,
    status_code=status.HTTP_201_CREATED,
    summary="Draw the round's sample (once per round) from its confirmed or latest allocation",
    responses=RESPONSES,
)
async def create_draw(
    uow: Uow, settings: Settings, round_id: RoundId, principal: Operator, body: DrawRequest | None = None
) -> DrawResult:
    body = body or DrawRequest()
    # The commit wakes the relays for the sample.drawn events the draw wrote in SQL.
    return await service.draw(
        uow,
        settings,
        round_id=round_id,
        seed=body.seed,
        sample_per_stratum=body.sample_per_stratum,
        drawn_by=principal.subject,
        force=body.force,
    )


@router.get(
    "/rounds/{round_id}/draws/{draw_id}/margins",
    response_model=DrawMargins,
    summary="Population margins of the drawn frame per municipality (for post-stratification / raking)",
)
async def get_margins(uow: Uow, draw_id: uuid.UUID, round_id: RoundId, principal: Operator) -> DrawMargins:
    margins = await service.draw_margins(uow, round_id, draw_id)
    if margins is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no draw {draw_id} in round {round_id}")
    return margins
