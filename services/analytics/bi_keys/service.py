"""The BI keys' service functions (each takes the unit of work): make, list, revoke, and check a
key a request presents."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from services.analytics.bi_keys import domain
from services.analytics.bi_keys.models import BiKey
from shared.auth import Principal
from shared.bus.outbox import UnitOfWork

# Who sees and revokes every key (KL's operator): a leaked key is stopped without its maker.
ADMIN_SCOPES = frozenset({"rounds:admin", "kommuner:all"})
# How often a key's last use is written (a refresh reads many pages in a minute).
LAST_USED_RESOLUTION = timedelta(minutes=1)


class KeyNotFound(LookupError):
    pass


def _is_admin(principal: Principal) -> bool:
    return ADMIN_SCOPES <= principal.scopes


async def create(
    uow: UnitOfWork, maker: Principal, label: str, kommunekoder: list[str] | None, all_kommuner: bool,
    expires_at: datetime | None,
) -> tuple[BiKey, str]:
    """A new key for ``maker`` and its secret (shown this once: only its hash is kept)."""
    rights = domain.key_rights(maker, kommunekoder, all_kommuner)
    key_id, secret = domain.new_credentials()
    key = BiKey(
        key_id=key_id, secret_hash=domain.hash_secret(secret), owner=maker.subject, label=label,
        scopes=list(rights.scopes), kommunekoder=list(rights.kommunekoder), expires_at=expires_at,
    )
    uow.session.add(key)
    await uow.session.flush()
    await uow.session.refresh(key)
    await uow.commit()
    return key, secret


async def list_keys(uow: UnitOfWork, principal: Principal) -> list[BiKey]:
    """The caller's keys (KL's operator: every key), newest first, revoked ones included."""
    query = sa.select(BiKey).order_by(BiKey.created_at.desc(), BiKey.key_id)
    if not _is_admin(principal):
        query = query.where(BiKey.owner == principal.subject)
    return list((await uow.session.scalars(query)).all())


async def revoke(uow: UnitOfWork, principal: Principal, key_id: str) -> BiKey:
    """Stop a key now (its maker or KL's operator). The row stays, with who revoked it and when."""
    key = await uow.session.get(BiKey, key_id, with_for_update=True)
    if key is None or not (_is_admin(principal) or key.owner == principal.subject):
        raise KeyNotFound(key_id)  # another client's key is not named to it
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        key.revoked_by = principal.subject
    await uow.commit()
    return key


async def authenticate(uow: UnitOfWork, key_id: str, secret: str) -> Principal | None:
    """The principal of a key that is known, matches, is not revoked and has not expired; None
    otherwise (the caller is not told which)."""
    if not domain.is_key_id(key_id):
        return None
    key = await uow.session.get(BiKey, key_id)
    now = datetime.now(UTC)
    if key is None or not domain.secret_matches(secret, key.secret_hash):
        return None
    if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        return None
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        await uow.session.execute(sa.update(BiKey).where(BiKey.key_id == key_id).values(last_used_at=now))
        await uow.commit()
    return domain.key_principal(key.key_id, key.scopes, key.kommunekoder)
