"""Key rotation of the CPR numbers at rest, without downtime.

To rotate: add the new key to ``CPR_KEYS`` and make it ``CPR_ACTIVE_KEY_ID`` (replicas restart
one by one; every replica can read both keys, new rows use the new one). This job then
re-encrypts the old rows in small transactions until none is left under a retired key id;
``GET /admin/keys`` shows the rows per key id, and a key at zero can be removed from settings.
Each row's key id is authenticated with its ciphertext, so a row cannot be decrypted as if it
were under another key.
"""

from __future__ import annotations

import asyncio
import logging
import os

import sqlalchemy as sa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.ingest.config import IngestSettings
from services.ingest.models import Citizen
from services.ingest.privacy.schemas import KeyStatus
from shared.bus import UnitOfWork

logger = logging.getLogger(__name__)


async def rows_per_key(session) -> dict[str, int]:
    rows = await session.execute(sa.select(Citizen.cpr_key_id, sa.func.count()).group_by(Citizen.cpr_key_id))
    return {key_id: n for key_id, n in rows.all()}


async def key_status(uow: UnitOfWork, settings: IngestSettings) -> KeyStatus:
    """CPR numbers at rest per key id, and how many still wait for the active key."""
    counts = await rows_per_key(uow.session)
    active = settings.cpr_active_key_id
    return KeyStatus(
        active_key_id=active, rows_per_key_id=counts, reencryption_pending=sum(n for k, n in counts.items() if k != active)
    )


async def reencrypt_step(runtime, settings: IngestSettings) -> int:
    """Re-encrypt one batch of rows under a retired key; returns how many rows it moved."""
    active = settings.cpr_active_key_id or ""
    keyring = settings.cpr_keyring
    if active not in keyring:
        return 0
    new = AESGCM(keyring[active])
    async with runtime.uow() as uow:
        rows = (
            await uow.session.execute(
                sa.select(Citizen.delivery_id, Citizen.pseudonym, Citizen.cpr_ciphertext, Citizen.cpr_key_id)
                .where(Citizen.cpr_key_id != active, Citizen.cpr_key_id.in_(list(keyring)))
                .limit(settings.reencrypt_batch_rows)
                .with_for_update(skip_locked=True)  # two replicas never fight over a row
            )
        ).all()
        if not rows:
            return 0
        old = {key_id: AESGCM(keyring[key_id]) for key_id in {r.cpr_key_id for r in rows}}
        updates = []
        for r in rows:
            plain = old[r.cpr_key_id].decrypt(r.cpr_ciphertext[:12], r.cpr_ciphertext[12:], r.cpr_key_id.encode())
            nonce = os.urandom(12)
            updates.append(
                {"d": r.delivery_id, "p": r.pseudonym, "c": nonce + new.encrypt(nonce, plain, active.encode()), "old": r.cpr_key_id}
            )
        table = Citizen.__table__
        await uow.session.execute(
            sa.update(table)
            .where(
                table.c.delivery_id == sa.bindparam("d"),
                table.c.pseudonym == sa.bindparam("p"),
                table.c.cpr_key_id == sa.bindparam("old"),
            )
            .values(cpr_ciphertext=sa.bindparam("c"), cpr_key_id=active),
            updates,
            execution_options={"synchronize_session": False},
        )
        await uow.commit()
    return len(rows)


async def run_reencryption(runtime) -> None:
    settings: IngestSettings = runtime.settings
    while True:
        moved = await reencrypt_step(runtime, settings)
        if moved:
            logger.info("re-encrypted CPR numbers under the active key", extra={"fields": {"rows": moved}})
            continue
        await asyncio.sleep(settings.reencrypt_interval_seconds)
