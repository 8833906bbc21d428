from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Request

from services.analytics import service
from services.analytics.schemas import ResponseRates
from shared.auth import Principal, require_scopes

router = APIRouter(tags=["aggregates"])
ROUND_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


@router.get(
    "/rounds/{round_id}/response-rates",
    response_model=ResponseRates,
    summary="Answers and response rate per municipality and nationally; small cells suppressed",
)
async def get_response_rates(
    request: Request,
    round_id: str = Path(pattern=ROUND_PATTERN),
    principal: Principal = Depends(require_scopes("aggregates:read")),
) -> ResponseRates:
    settings = request.app.state.settings
    async with request.app.state.runtime.uow() as uow:
        return await service.response_rates(uow, round_id, principal, settings.suppression_threshold)
