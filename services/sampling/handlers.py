"""Sampling's event handlers: keep the frame per round and municipality current, and each
round's definition (round.defined, highest revision).

The frame holds no contact data: population.received v2 carries none (ingest keeps the contacts
and releases the sampled citizens' itself, on contacts.released), and the sealed contacts of v1
chunks still on the topic are ignored, never stored."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert

from services.sampling import frame
from services.sampling.models import TOMBSTONES, FrameDelivery, FrameUnit, RoundDefinition
from shared.bus import UnitOfWork
from shared.events import Envelope, PopulationReceived, PopulationReceivedV1, RoundDefined
from shared.privacy import erased_among, round_purged


async def on_population_received(uow: UnitOfWork, envelope: Envelope, event: PopulationReceived | PopulationReceivedV1) -> None:
    """Either version (the consumer decodes by the envelope's version): only the fields they
    share are read, so a v1 person's ``contact`` goes no further than the parsed event.

    A chunk after the round's purge is dropped whole; erased citizens in a chunk are left out
    (shared.privacy: tombstones), the chunk still counted towards its delivery."""
    session = uow.session
    if await round_purged(session, TOMBSTONES, event.round_id):
        return
    if erased := await erased_among(session, TOMBSTONES, [p.pseudonym for p in event.persons]):
        event = event.model_copy(update={"persons": [p for p in event.persons if p.pseudonym not in erased]})
    await session.execute(
        pg_insert(FrameDelivery)
        .values(
            delivery_id=event.delivery_id,
            round_id=event.round_id,
            kommunekode=event.kommunekode,
            reference_date=event.reference_date,
            chunks_received=0,
            complete=False,
            active=False,
        )
        .on_conflict_do_nothing()
    )
    if event.persons:
        await session.execute(
            pg_insert(FrameUnit)
            .values(
                [
                    {
                        "delivery_id": event.delivery_id,
                        "pseudonym": p.pseudonym,
                        "maalgruppe": p.maalgruppe,
                        "gender": p.bands.gender,
                        "age_band": p.bands.age_band,
                        "duration_band": p.bands.duration_band,
                        "forskerbeskyttet": p.forskerbeskyttet,
                        "deceased": p.deceased,
                        "emigrated": p.emigrated,
                    }
                    for p in event.persons
                ]
            )
            .on_conflict_do_nothing()
        )
    values: dict = {"chunks_received": FrameDelivery.chunks_received + 1}
    if event.final:
        values |= {"chunk_count": event.chunk_count, "person_count": event.person_count}
    delivery = (
        await session.execute(
            sa.update(FrameDelivery).where(FrameDelivery.delivery_id == event.delivery_id).values(**values).returning(FrameDelivery)
        )
    ).scalar_one()
    if delivery.chunk_count is not None and delivery.chunks_received >= delivery.chunk_count:
        await _activate(uow, delivery)


async def _activate(uow: UnitOfWork, delivery: FrameDelivery) -> None:
    """The complete delivery becomes the frame; the ones it replaces are dropped (their counts
    with them, by cascade), and its own counts and duplicate candidates are recorded
    (services.sampling.frame), one activation of the round at a time.

    Deliveries of one round and municipality share a key, so they arrive in the order ingest
    accepted them: every other delivery we hold for it is older."""
    session = uow.session
    await frame.lock_round(session, delivery.round_id)
    await session.execute(
        sa.delete(FrameDelivery).where(
            FrameDelivery.round_id == delivery.round_id,
            FrameDelivery.kommunekode == delivery.kommunekode,
            FrameDelivery.delivery_id != delivery.delivery_id,
        )
    )
    await session.execute(
        sa.update(FrameDelivery).where(FrameDelivery.delivery_id == delivery.delivery_id).values(complete=True, active=True)
    )
    await frame.record_activation(session, delivery.delivery_id, delivery.round_id)


async def on_round_defined(uow: UnitOfWork, envelope: Envelope, event: RoundDefined) -> None:
    """Keep the highest revision of the round's definition; a lower or equal one is a replay."""
    values = {
        "revision": event.revision,
        "phase": event.phase,
        "kommuner": list(event.kommuner),
        "delivery_deadline": event.delivery_deadline,
        "definition": event.model_dump(mode="json"),
        "received_at": sa.func.now(),
    }
    statement = pg_insert(RoundDefinition).values(round_id=event.round_id, **values)
    await uow.session.execute(
        statement.on_conflict_do_update(
            index_elements=["round_id"], set_=values, where=RoundDefinition.revision < statement.excluded.revision
        )
    )


HANDLERS = {PopulationReceived: on_population_received, RoundDefined: on_round_defined}
