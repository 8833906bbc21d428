"""HTTP API of the privacy coordination (KL-level operators only).

- ``POST /rounds/{round_id}/close`` starts a round's retention clock; ``GET .../retention`` shows
  which services have purged it (and verified that nothing is left).
- ``POST /privacy/requests`` takes a citizen's erasure or objection (the CPR number in the body,
  never in a URL, a log or an event); ``GET /privacy/requests/{id}`` shows the receipts.
- ``GET /admin/keys`` shows CPR rows per key id, for rotations.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, HTTPException, status

from services.ingest.deps import KeysAdmin, Operator, PrivacyAdmin, RoundId, Settings, Uow
from services.ingest.privacy import keys, service
from services.ingest.privacy.schemas import CloseRound, KeyStatus, PrivacyRequestIn, PrivacyRequestStatus, RetentionStatus
from shared.audit import AUDITED_READ

router = APIRouter(tags=["privacy"])


@router.post(
    "/rounds/{round_id}/close",
    response_model=RetentionStatus,
    status_code=status.HTTP_201_CREATED,
    summary="Close a round (phase closed; ends fieldwork if it runs): its identifiers are purged in every service "
    "when the retention period has run out",
    responses={404: {"description": "no such round"}, 409: {"description": "already closed"}},
)
async def close_round(uow: Uow, settings: Settings, round_id: RoundId, principal: Operator, body: CloseRound | None = None) -> RetentionStatus:
    return await service.close_round(
        uow, settings, round_id, closed_by=principal.subject, retention_days=(body or CloseRound()).retention_days
    )


@router.get("/rounds/{round_id}/retention", response_model=RetentionStatus, summary="A closed round's purge, service by service")
async def round_retention(uow: Uow, round_id: RoundId, principal: Operator) -> RetentionStatus:
    found = await service.retention_status(uow, round_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"round {round_id} is not closed")
    return found


@router.post(
    "/privacy/requests",
    response_model=PrivacyRequestStatus,
    status_code=status.HTTP_202_ACCEPTED,
    summary="A citizen's erasure or objection: removed from every service, and (objection) from future extracts",
    responses={422: {"description": "not a CPR number"}},
)
async def take_request(uow: Uow, settings: Settings, body: PrivacyRequestIn, principal: PrivacyAdmin) -> PrivacyRequestStatus:
    return await service.take_privacy_request(
        uow, settings, cpr=body.cpr, kind=body.kind, requested_by=principal.subject, reference=body.reference
    )


@router.get(
    "/privacy/requests/{request_id}",
    response_model=PrivacyRequestStatus,
    summary="Where a citizen's request has been carried out",
    openapi_extra=AUDITED_READ,
)
async def request_status(uow: Uow, request_id: uuid.UUID, principal: PrivacyAdmin) -> PrivacyRequestStatus:
    found = await service.privacy_request_status(uow, request_id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no privacy request {request_id}")
    return found


@router.get("/admin/keys", response_model=KeyStatus, summary="CPR numbers at rest per key id (for key rotation)")
async def key_status(uow: Uow, settings: Settings, principal: KeysAdmin) -> KeyStatus:
    return await keys.key_status(uow, settings)
