from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status

from services.sampling import service
from services.sampling.schemas import DrawRequest, DrawResult, FrameSummary
from shared.auth import Principal, require_scopes

router = APIRouter(tags=["sampling"])
ROUND_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


@router.get("/rounds/{round_id}/frame", response_model=FrameSummary, summary="The sampling frame per stratum")
async def get_frame(
    request: Request,
    round_id: str = Path(pattern=ROUND_PATTERN),
    principal: Principal = Depends(require_scopes("rounds:admin")),
) -> FrameSummary:
    async with request.app.state.runtime.uow() as uow:
        return await service.frame_summary(uow, round_id)


@router.post(
    "/rounds/{round_id}/draws",
    response_model=DrawResult,
    status_code=status.HTTP_201_CREATED,
    summary="Draw the round's sample (once per round)",
    responses={409: {"description": "the round already has a draw"}, 422: {"description": "empty frame"}},
)
async def create_draw(
    request: Request,
    body: DrawRequest,
    round_id: str = Path(pattern=ROUND_PATTERN),
    principal: Principal = Depends(require_scopes("rounds:admin")),
) -> DrawResult:
    async with request.app.state.runtime.uow() as uow:
        try:
            return await service.draw_sample(
                uow,
                request.app.state.settings,
                round_id=round_id,
                seed=body.seed,
                sample_per_stratum=body.sample_per_stratum,
                drawn_by=principal.subject,
            )
        except service.DrawExists:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=f"round {round_id} already has a draw") from None
        except service.EmptyFrame:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, detail=f"round {round_id} has no population yet") from None
