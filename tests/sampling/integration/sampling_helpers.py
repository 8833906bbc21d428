"""Feeding the sampling service as ingest would: PopulationReceived chunks on the real broker."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import uuid
from datetime import date

from aiokafka import AIOKafkaConsumer

from services.sampling.domain import MAALGRUPPER, FrameUnit
from shared.bus import make_producer
from shared.crypto import ContactDetails, new_key, seal_contact
from shared.events import Bands, Envelope, PopulationPerson, PopulationReceived, SampleDrawn
from shared.testing.fixtures import bearer

CONTACT_KEY = base64.b64decode(new_key())
AGE = ["16-29", "30-39", "40-49", "50-59", "60+"]
DURATION = ["0-3 mdr", "3-6 mdr", "6-12 mdr", "12+ mdr"]


def citizens(round_id: str, kommunekode: str, count: int, *, seed: int, flagged: bool = True, start: int = 0) -> list[PopulationPerson]:
    """`count` citizens of one municipality; pseudonyms depend on (kommunekode, index) only, so
    the same citizens can be delivered again in a later round. With `flagged`, every 20th is
    forskerbeskyttet, every 31st deceased and every 47th emigrated."""
    rng = random.Random(seed)
    persons = []
    for i in range(start, start + count):
        pseudonym = hashlib.sha256(f"{kommunekode}:{i}".encode()).hexdigest()
        persons.append(
            PopulationPerson(
                pseudonym=pseudonym,
                maalgruppe=MAALGRUPPER[i % len(MAALGRUPPER)],
                bands=Bands(gender=rng.choice("MK"), age_band=rng.choice(AGE), duration_band=rng.choice(DURATION)),
                forskerbeskyttet=flagged and i % 20 == 7,
                deceased=flagged and i % 31 == 3,
                emigrated=flagged and i % 47 == 5,
                contact=seal_contact(
                    ContactDetails(cpr=f"0101{i % 100:02d}-{i % 10000:04d}", name=None, phone_e164=None),
                    round_id=round_id,
                    pseudonym=pseudonym,
                    key_id="contact-1",
                    key=CONTACT_KEY,
                ),
            )
        )
    return persons


def delivery(
    round_id: str, kommunekode: str, persons: list[PopulationPerson], *, reference_date: date, chunk_size: int = 400, supersedes: uuid.UUID | None = None
) -> list[PopulationReceived]:
    delivery_id = uuid.uuid4()
    chunks = [persons[i : i + chunk_size] for i in range(0, len(persons), chunk_size)] or [[]]
    return [
        PopulationReceived(
            round_id=round_id,
            kommunekode=kommunekode,
            delivery_id=delivery_id,
            supersedes=supersedes,
            reference_date=reference_date,
            chunk_no=n,
            final=n == len(chunks) - 1,
            chunk_count=len(chunks) if n == len(chunks) - 1 else None,
            person_count=len(persons) if n == len(chunks) - 1 else None,
            persons=chunk,
        )
        for n, chunk in enumerate(chunks)
    ]


async def produce(bootstrap: str, prefix: str, payloads: list[PopulationReceived]) -> None:
    producer = make_producer(bootstrap, "sampling-test")
    await producer.start()
    try:
        for p in payloads:
            envelope = Envelope.wrap(p, source="ingest", correlation_id=f"test:{p.round_id}")
            await producer.send_and_wait(f"{prefix}population.received", envelope.model_dump_json().encode(), key=p.key().encode())
    finally:
        await producer.stop()


async def wait_for_frame(client, token: str, round_id: str, populations: dict[str, int], timeout: float = 60) -> dict:
    """Until the frame holds exactly these populations per municipality."""
    async with asyncio.timeout(timeout):
        while True:
            r = await client.get(f"/rounds/{round_id}/frame", headers=bearer(token))
            if r.status_code == 200:
                got: dict[str, int] = {}
                for s in r.json()["strata"]:
                    got[s["kommunekode"]] = got.get(s["kommunekode"], 0) + s["population"]
                if got == populations:
                    return r.json()
            await asyncio.sleep(0.1)


async def consume_sample(bootstrap: str, prefix: str, round_id: str, expected_persons: int, timeout: float = 60) -> list[tuple[bytes, SampleDrawn]]:
    consumer = AIOKafkaConsumer(f"{prefix}sample.drawn", bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    out: list[tuple[bytes, SampleDrawn]] = []
    try:
        async with asyncio.timeout(timeout):
            while sum(len(e.persons) for _, e in out) < expected_persons:
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for r in records:
                        event = Envelope.model_validate_json(r.value).payload()
                        assert isinstance(event, SampleDrawn)
                        if event.round_id == round_id:
                            out.append((r.value, event))
    finally:
        await consumer.stop()
    return out


def frame_units(kommunekode: str, persons: list[PopulationPerson]) -> list[FrameUnit]:
    """The same citizens as the domain sees them (for cross-checks against the service)."""
    return [
        FrameUnit(
            p.pseudonym,
            kommunekode,
            p.maalgruppe,
            forskerbeskyttet=p.forskerbeskyttet,
            deceased=p.deceased,
            emigrated=p.emigrated,
            bands={"gender": p.bands.gender, "age_band": p.bands.age_band, "duration_band": p.bands.duration_band},
        )
        for p in persons
    ]
