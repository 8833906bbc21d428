"""HTTP API of the privacy coordination (KL-level operators only).

- ``POST /rounds/{round_id}/close`` starts a round's retention clock; ``GET .../retention`` shows
  which services have purged it (and verified that nothing is left).
- ``POST /privacy/requests`` takes a citizen's erasure or objection (the CPR number in the body,
  never in a URL, a log or an event); ``GET /privacy/requests/{id}`` shows the receipts.
- ``GET /admin/keys`` shows CPR rows per key id, for rotations.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, status
from pydantic import BaseModel, Field

from services.ingest import rounds
from services.ingest.domain.rounds import TransitionRefused
from services.ingest.privacy import keys, service
from shared.app import RoundId
from shared.audit import AUDITED_READ
from shared.auth import Principal, require_scopes

router = APIRouter(tags=["privacy"])

RoundAdmin = Annotated[Principal, Depends(require_scopes("rounds:admin", "kommuner:all"))]
PrivacyAdmin = Annotated[Principal, Depends(require_scopes("privacy:admin", "kommuner:all"))]
KeysAdmin = Annotated[Principal, Depends(require_scopes("keys:admin", "kommuner:all"))]


class CloseRound(BaseModel):
    # Default: the round's retention_days. 0 purges at the next tick of the retention clock.
    retention_days: int | None = Field(default=None, ge=0, le=3650)


class Receipt(BaseModel):
    service: str
    removed: dict[str, int]
    verified: bool
    at: datetime


class RetentionStatus(BaseModel):
    round_id: str
    closed_at: datetime
    closed_by: str
    purge_after: datetime
    purge_requested_at: datetime | None
    receipts: list[Receipt]
    complete: bool  # every service has purged and verified
    waiting_for: list[str]


class PrivacyRequestIn(BaseModel):
    cpr: str = Field(min_length=10, max_length=11, repr=False, description="DDMMYYSSSS or DDMMYY-SSSS")
    kind: Literal["erasure", "objection"]
    reference: str | None = Field(default=None, max_length=100, pattern=r"^[A-Za-z0-9_./-]*$")


class PrivacyRequestStatus(BaseModel):
    request_id: uuid.UUID
    kind: str
    requested_at: datetime
    reference: str | None
    receipts: list[Receipt]
    complete: bool
    waiting_for: list[str]


def _receipts(found: dict, *, at: str) -> dict:
    receipts = found["receipts"]
    return {
        "receipts": [
            Receipt(service=s, removed=r.removed, verified=r.verified, at=getattr(r, at)) for s, r in sorted(receipts.items())
        ],
        "complete": found["complete"],
        "waiting_for": [s for s in service.SERVICES if s not in receipts],
    }


def _uow(request: Request):
    return request.app.state.runtime.uow()


async def _retention(request: Request, round_id: str) -> RetentionStatus:
    # Built inside the unit of work: leaving it rolls back, which expires the loaded rows.
    async with _uow(request) as uow:
        found = await service.retention_status(uow, round_id)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"round {round_id} is not closed")
        closure = found["closure"]
        return RetentionStatus(
            round_id=closure.round_id,
            closed_at=closure.closed_at,
            closed_by=closure.closed_by,
            purge_after=closure.purge_after,
            purge_requested_at=closure.purge_requested_at,
            **_receipts(found, at="purged_at"),
        )


@router.post(
    "/rounds/{round_id}/close",
    response_model=RetentionStatus,
    status_code=status.HTTP_201_CREATED,
    summary="Close a round (phase closed; ends fieldwork if it runs): its identifiers are purged in every service "
    "when the retention period has run out",
    responses={404: {"description": "no such round"}, 409: {"description": "already closed"}},
)
async def close_round(request: Request, round_id: RoundId, principal: RoundAdmin, body: CloseRound | None = None) -> RetentionStatus:
    settings = request.app.state.settings
    async with _uow(request) as uow:
        try:
            await service.close_round(
                uow, settings, round_id, closed_by=principal.subject, retention_days=(body or CloseRound()).retention_days
            )
        except service.RoundAlreadyClosed:
            raise HTTPException(status.HTTP_409_CONFLICT, detail=f"round {round_id} is already closed") from None
        except rounds.RoundUnknown as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=str(exc)) from None
        except TransitionRefused as exc:
            raise HTTPException(status.HTTP_409_CONFLICT, detail={"message": str(exc), "problems": exc.problems}) from None
    if (body or CloseRound()).retention_days == 0:
        async with _uow(request) as uow:
            await service.request_purge(uow, round_id)
    return await _retention(request, round_id)


@router.get("/rounds/{round_id}/retention", response_model=RetentionStatus, summary="A closed round's purge, service by service")
async def round_retention(request: Request, round_id: RoundId, principal: RoundAdmin) -> RetentionStatus:
    return await _retention(request, round_id)


@router.post(
    "/privacy/requests",
    response_model=PrivacyRequestStatus,
    status_code=status.HTTP_202_ACCEPTED,
    summary="A citizen's erasure or objection: removed from every service, and (objection) from future extracts",
    responses={422: {"description": "not a CPR number"}},
)
async def take_request(request: Request, body: PrivacyRequestIn, principal: PrivacyAdmin) -> PrivacyRequestStatus:
    async with _uow(request) as uow:
        try:
            taken = await service.take_privacy_request(
                uow, request.app.state.settings, cpr=body.cpr, kind=body.kind, requested_by=principal.subject, reference=body.reference
            )
        except service.InvalidCpr as exc:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_ENTITY, detail=[{"loc": ["body", "cpr"], "msg": str(exc)}]) from None
    return await _request_status(request, taken.id)


async def _request_status(request: Request, request_id: uuid.UUID) -> PrivacyRequestStatus:
    async with _uow(request) as uow:
        found = await service.privacy_request_status(uow, request_id)
        if found is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no privacy request {request_id}")
        req = found["request"]
        return PrivacyRequestStatus(
            request_id=req.id,
            kind=req.kind,
            requested_at=req.requested_at,
            reference=req.reference,
            **_receipts(found, at="erased_at"),
        )


@router.get(
    "/privacy/requests/{request_id}",
    response_model=PrivacyRequestStatus,
    summary="Where a citizen's request has been carried out",
    openapi_extra=AUDITED_READ,
)
async def request_status(request: Request, request_id: uuid.UUID, principal: PrivacyAdmin) -> PrivacyRequestStatus:
    return await _request_status(request, request_id)


class KeyStatus(BaseModel):
    active_key_id: str | None
    rows_per_key_id: dict[str, int]
    reencryption_pending: int  # rows under a key other than the active one


@router.get("/admin/keys", response_model=KeyStatus, summary="CPR numbers at rest per key id (for key rotation)")
async def key_status(request: Request, principal: KeysAdmin) -> KeyStatus:
    settings = request.app.state.settings
    async with _uow(request) as uow:
        counts = await keys.rows_per_key(uow.session)
    active = settings.cpr_active_key_id
    return KeyStatus(
        active_key_id=active, rows_per_key_id=counts, reencryption_pending=sum(n for k, n in counts.items() if k != active)
    )
