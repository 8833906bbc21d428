from __future__ import annotations

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Path, Request

from services.dispatch.models import DispatchStep, Invitation
from services.dispatch.schemas import DispatchStatus, StepCount
from shared.auth import Principal, require_scopes

router = APIRouter(tags=["dispatch"])
ROUND_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


@router.get("/rounds/{round_id}/status", response_model=DispatchStatus, summary="Messages per step and status")
async def round_status(
    request: Request,
    round_id: str = Path(pattern=ROUND_PATTERN),
    principal: Principal = Depends(require_scopes("rounds:admin")),
) -> DispatchStatus:
    async with request.app.state.runtime.uow() as uow:
        rows = (
            await uow.session.execute(
                sa.select(Invitation.kommunekode, DispatchStep.step, DispatchStep.status, sa.func.count())
                .join(Invitation, Invitation.id == DispatchStep.invitation_id)
                .where(Invitation.round_id == round_id)
                .group_by(Invitation.kommunekode, DispatchStep.step, DispatchStep.status)
                .order_by(Invitation.kommunekode, DispatchStep.step, DispatchStep.status)
            )
        ).all()
    return DispatchStatus(round_id=round_id, steps=[StepCount(kommunekode=k, step=s, status=st, count=n) for k, s, st, n in rows])
