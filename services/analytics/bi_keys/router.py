"""The BI keys' routes: a BI client makes, lists and revokes its keys with its OAuth2 token (a key
never makes a key). Thin: the rules are in domain.py, the storage in service.py, the refusals'
answers in services/analytics/errors.py."""

from __future__ import annotations

from fastapi import APIRouter, Path

from services.analytics.bi_keys import domain, service
from services.analytics.bi_keys.schemas import BiKeyCreated, BiKeyIn, BiKeyOut
from services.analytics.deps import BiClient, Uow

router = APIRouter(prefix="/bi-keys", tags=["bi-keys"])
KEY_ID = Path(pattern=domain.KEY_ID_PATTERN, description="The key's id (bbk_ and 16 hex digits)")


@router.post(
    "", status_code=201, response_model=BiKeyCreated,
    summary="Make a BI key: a read-only credential for a BI tool's unattended refresh (its secret is shown once)",
)
async def create_key(uow: Uow, body: BiKeyIn, principal: BiClient) -> BiKeyCreated:
    key, secret = await service.create(uow, principal, body.label, body.kommunekoder, body.all_kommuner, body.expires_at)
    return BiKeyCreated(**BiKeyOut.model_validate(key).model_dump(), secret=secret)


@router.get("", response_model=list[BiKeyOut], summary="The caller's BI keys, newest first (KL's operator: every key)")
async def list_keys(uow: Uow, principal: BiClient) -> list[BiKeyOut]:
    return [BiKeyOut.model_validate(k) for k in await service.list_keys(uow, principal)]


@router.delete("/{key_id}", response_model=BiKeyOut, summary="Revoke a BI key: it stops working at once")
async def revoke_key(uow: Uow, principal: BiClient, key_id: str = KEY_ID) -> BiKeyOut:
    return BiKeyOut.model_validate(await service.revoke(uow, principal, key_id))
