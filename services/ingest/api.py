"""Ingest's HTTP API: thin routers over service functions."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, HTTPException, Path, Request, status

from services.ingest import service
from services.ingest.schemas import DeliveryReport, JsonExtract
from shared.auth import Principal, ensure_kommune_access, require_scopes

router = APIRouter(tags=["extracts"])

KOMMUNEKODE_PATTERN = r"^\d{3}$"
ROUND_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


@router.post(
    "/rounds/{round_id}/extracts/{kommunekode}",
    response_model=DeliveryReport,
    status_code=status.HTTP_201_CREATED,
    summary="Deliver a municipality's population extract for a round (replaces an earlier delivery)",
    responses={403: {"description": "not allowed for this municipality"}, 422: {"description": "delivery rejected"}},
)
async def deliver_extract(
    request: Request,
    body: JsonExtract,
    round_id: str = Path(pattern=ROUND_PATTERN),
    kommunekode: str = Path(pattern=KOMMUNEKODE_PATTERN),
    principal: Principal = Depends(require_scopes("extracts:write")),
) -> DeliveryReport:
    ensure_kommune_access(principal, kommunekode)
    runtime = request.app.state.runtime
    preparation = service.prepare_rows(body.rows, body.reference_date)
    if preparation.errors and body.policy == "reject_all":
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_ENTITY,
            detail={
                "message": f"delivery rejected: {len(preparation.errors)} row error(s) and policy reject_all",
                "errors": [e.model_dump() for e in preparation.errors[:1000]],
            },
        )
    async with runtime.uow() as uow:
        return await service.store_delivery(
            uow,
            request.app.state.settings,
            round_id=round_id,
            kommunekode=kommunekode,
            delivered_by=principal.subject,
            reference_date=body.reference_date,
            preparation=preparation,
        )


@router.get("/deliveries/{delivery_id}", response_model=DeliveryReport, summary="A delivery's report")
async def get_delivery(
    request: Request, delivery_id: uuid.UUID, principal: Principal = Depends(require_scopes("extracts:read"))
) -> DeliveryReport:
    async with request.app.state.runtime.uow() as uow:
        delivery = await service.get_delivery(uow, delivery_id)
    if delivery is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such delivery")
    ensure_kommune_access(principal, delivery.kommunekode)
    return service.report_for(delivery)
