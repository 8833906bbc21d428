"""A population chunk reaching sampling after its round's purge or its citizen's erasure (a replay,
a consumer behind, a dead letter re-driven) puts nothing back in the frame: tombstones
(shared.privacy), written in the purge's or erasure's transaction. Everything goes through the
broker to the running service."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, date, datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from services.sampling.config import SamplingSettings
from services.sampling.main import create_app
from services.sampling.models import BUS, TOMBSTONES, FrameDelivery, FrameUnit
from shared.db import to_async_url
from shared.events import CitizenErasureRequested, RoundPurgeRequested
from shared.privacy import pseudonym_digest
from shared.testing.fixtures import publish_events, running_app, settings_from_env

from sampling_helpers import citizens, delivery, produce, wait_for_frame

REF = date(2025, 8, 1)


async def _units(engine, *, round_id: str | None = None, pseudonyms: list[str] | None = None) -> int:
    query = sa.select(sa.func.count()).select_from(FrameUnit)
    if round_id is not None:
        query = query.join(FrameDelivery, FrameDelivery.delivery_id == FrameUnit.delivery_id).where(FrameDelivery.round_id == round_id)
    if pseudonyms is not None:
        query = query.where(FrameUnit.pseudonym.in_(pseudonyms))
    async with engine.connect() as conn:
        return await conn.scalar(query)


async def _processed(engine) -> int:
    async with engine.connect() as conn:
        return await conn.scalar(sa.select(sa.func.count()).select_from(BUS.processed_event))


async def _until(predicate, what: str, timeout: float = 60) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not await predicate():
                await asyncio.sleep(0.1)
    except TimeoutError:
        raise AssertionError(f"timed out waiting for {what}") from None


async def test_a_late_population_chunk_after_a_purge_or_an_erasure_puts_nothing_back(service_env, dev_issuer, kafka_bootstrap, topic_prefix):
    purged_round, kept_round = f"r-purged-{uuid.uuid4().hex[:6]}", f"r-kept-{uuid.uuid4().hex[:6]}"
    purged_people = citizens(purged_round, "101", 50, seed=1, flagged=False)
    kept_people = citizens(kept_round, "147", 30, seed=2, flagged=False)
    erased = kept_people[4].pseudonym
    purged_delivery = delivery(purged_round, "101", purged_people, reference_date=REF, chunk_size=20)
    kept_delivery = delivery(kept_round, "147", kept_people, reference_date=REF, chunk_size=20)
    token = dev_issuer.mint("kl-operator", ["rounds:admin", "kommuner:all"])
    engine = create_async_engine(to_async_url(service_env["DATABASE_URL"]))
    try:
        async with running_app(create_app(settings_from_env(SamplingSettings, service_env))) as client:
            await produce(kafka_bootstrap, topic_prefix, [*purged_delivery, *kept_delivery])
            await wait_for_frame(client, token, purged_round, {"101": 50})
            await wait_for_frame(client, token, kept_round, {"147": 30})

            now = datetime.now(UTC)
            await publish_events(kafka_bootstrap, topic_prefix, [
                RoundPurgeRequested(round_id=purged_round, closed_at=now, requested_at=now),
                CitizenErasureRequested(request_id=uuid.uuid4(), kind="erasure", pseudonyms=[erased], requested_at=now),
            ], source="ingest")
            await _until(lambda: _gone(engine, purged_round, erased), "the purge and the erasure")
            async with engine.connect() as conn:
                buried = set((await conn.execute(sa.select(TOMBSTONES.c.kind, TOMBSTONES.c.ref))).tuples())
            assert buried == {("round", purged_round), ("citizen", pseudonym_digest(erased))}  # never the pseudonym itself

            # Late: the purged round's chunks again and a new delivery of it; the erased citizen
            # in the same chunks again and in a new delivery that replaces the kept round's
            # (new envelopes, as a re-publication or a re-driven dead letter carries them).
            new_purged = delivery(purged_round, "101", purged_people, reference_date=REF, chunk_size=20)
            new_kept = delivery(kept_round, "147", kept_people, reference_date=REF, chunk_size=20,
                                supersedes=kept_delivery[0].delivery_id)
            late = [*purged_delivery, *new_purged, *kept_delivery, *new_kept]
            before = await _processed(engine)
            await produce(kafka_bootstrap, topic_prefix, late, define=False)
            await _until(lambda: _processed_at_least(engine, before + len(late)), "the late chunks to be handled")

            assert await _units(engine, round_id=purged_round) == 0
            assert await _units(engine, pseudonyms=[erased]) == 0
            # The rest of the kept round's new delivery is the frame; the erased citizen is not in it.
            frame = await wait_for_frame(client, token, kept_round, {"147": 29})
            assert sum(s["population"] for s in frame["strata"]) == 29
            assert (await client.get(f"/rounds/{purged_round}/frame", headers={"Authorization": f"Bearer {token}"})).json()["strata"] == []
    finally:
        await engine.dispose()


async def _gone(engine, round_id: str, pseudonym: str) -> bool:
    return await _units(engine, round_id=round_id) == 0 and await _units(engine, pseudonyms=[pseudonym]) == 0


async def _processed_at_least(engine, count: int) -> bool:
    return await _processed(engine) >= count
