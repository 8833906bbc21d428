"""A link.issued reaching responses after its round's purge or its citizen's erasure (a replay, a
consumer behind) opens no link again: tombstones (shared.privacy), checked in the insert itself."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa

from responses_helpers import link_issued, new_token, token_hash
from services.responses.handlers import on_link_issued
from services.responses.models import Respondent
from services.responses.privacy import RULES
from shared.events import CitizenErasureRequested, Envelope, RoundPurgeRequested
from shared.privacy import privacy_handlers


async def _handle(app, handler, payload) -> None:
    envelope = Envelope.wrap(payload, source="test", correlation_id="test")
    async with app.state.runtime.uow() as uow:
        await handler(uow, envelope, payload)
        await uow.commit()


async def _links(app, hashes) -> int:
    async with app.state.runtime.sessionmaker() as session:
        return await session.scalar(sa.select(sa.func.count()).where(Respondent.token_hash.in_(hashes)))


async def test_a_late_link_after_a_purge_or_an_erasure_opens_nothing(app, client):
    privacy = privacy_handlers(RULES)
    round_id = f"r-late-{uuid.uuid4().hex[:6]}"
    purged, kept = new_token(), new_token()
    await _handle(app, on_link_issued, link_issued(purged, round_id=round_id))
    await _handle(app, privacy[RoundPurgeRequested], RoundPurgeRequested(
        round_id=round_id, closed_at=datetime.now(UTC), requested_at=datetime.now(UTC)))
    erased_event = link_issued(kept, round_id=f"{round_id}-b")
    await _handle(app, on_link_issued, erased_event)
    await _handle(app, privacy[CitizenErasureRequested], CitizenErasureRequested(
        request_id=uuid.uuid4(), kind="erasure", pseudonyms=[erased_event.pseudonym], requested_at=datetime.now(UTC)))
    assert await _links(app, [token_hash(purged), token_hash(kept)]) == 0

    # Replayed: neither link comes back; a link of another round and citizen still does.
    other = new_token()
    for token, event in ((purged, link_issued(purged, round_id=round_id)), (kept, erased_event),
                         (other, link_issued(other, round_id=f"{round_id}-b"))):
        await _handle(app, on_link_issued, event)
    assert await _links(app, [token_hash(purged), token_hash(kept)]) == 0
    assert await _links(app, [token_hash(other)]) == 1
    assert (await client.get(f"/s/{purged}")).status_code == 404
    assert (await client.get(f"/s/{other}")).status_code == 200
