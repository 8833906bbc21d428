"""Feeding the sampling service as ingest would: population.received chunks on the real broker
(version 2, without contacts, as ingest publishes them; version 1, with sealed contacts, as
chunks published before the change still sit on the topic), and reading its sample.drawn back."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import random
import uuid
from datetime import date

from aiokafka import AIOKafkaConsumer

from services.sampling.domain import MAALGRUPPER, FrameUnit
from shared.crypto import ContactDetails, new_key, seal_contact
from shared.events import (
    Bands,
    Envelope,
    FrameMargins,
    PopulationPerson,
    PopulationPersonV1,
    PopulationReceived,
    PopulationReceivedV1,
    SampleDrawn,
)
from shared.testing.fixtures import bearer, publish_events
from shared.testing.round import round_defined_event

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
            )
        )
    return persons


def with_contacts(round_id: str, persons: list[PopulationPerson]) -> list[PopulationPersonV1]:
    """The same citizens as population.received v1 carried them: each with a sealed contact."""
    return [
        PopulationPersonV1(
            **p.model_dump(),
            contact=seal_contact(
                ContactDetails(cpr=f"0101{i % 100:02d}-{i % 10000:04d}", name=f"Borger {i}", phone_e164=None),
                round_id=round_id,
                pseudonym=p.pseudonym,
                key_id="contact-1",
                key=CONTACT_KEY,
            ),
        )
        for i, p in enumerate(persons)
    ]


def delivery(
    round_id: str,
    kommunekode: str,
    persons: list[PopulationPerson],
    *,
    reference_date: date,
    chunk_size: int = 400,
    supersedes: uuid.UUID | None = None,
) -> list[PopulationReceived] | list[PopulationReceivedV1]:
    """A delivery as population.received chunks: version 2, or version 1 when the persons carry
    contacts (``with_contacts``)."""
    delivery_id = uuid.uuid4()
    chunks = [persons[i : i + chunk_size] for i in range(0, len(persons), chunk_size)] or [[]]
    model = PopulationReceivedV1 if persons and isinstance(persons[0], PopulationPersonV1) else PopulationReceived
    return [
        model(
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


async def produce(bootstrap: str, prefix: str, payloads: list[PopulationReceived | PopulationReceivedV1], *, define: bool = True) -> None:
    """Publish the chunks as ingest would; with ``define``, each round's definition first (ingest
    publishes round.defined when KL's operator creates the round, before any delivery; a
    repeated revision 1 is a replay sampling ignores)."""
    rounds = [round_defined_event(r) for r in dict.fromkeys(p.round_id for p in payloads)] if define else []
    await publish_events(bootstrap, prefix, [*rounds, *payloads], source="ingest")


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


# A person of sample.drawn v2, as the draw statement concatenates it in SQL: no contact.
SAMPLED_PERSON_FIELDS = {"pseudonym", "maalgruppe", "stratum", "bands", "inclusion_probability", "design_weight"}


async def consume_sample(bootstrap: str, prefix: str, round_id: str, expected_persons: int, timeout: float = 60) -> list[tuple[bytes, SampleDrawn]]:
    """The round's sample.drawn chunks as published (raw bytes) and parsed. Each must be version
    2, parse as the shared SampleDrawn byte for byte (the persons are JSON built in SQL, not by
    the model), and carry exactly v2's person fields: a contact would be personal data sampling
    must no longer publish, so it is checked in the raw JSON, not only by the model."""
    consumer = AIOKafkaConsumer(f"{prefix}sample.drawn", bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    out: list[tuple[bytes, SampleDrawn]] = []
    try:
        async with asyncio.timeout(timeout):
            while sum(len(e.persons) for _, e in out) < expected_persons:
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for r in records:
                        envelope = Envelope.model_validate_json(r.value)
                        assert (envelope.type, envelope.version) == ("sample.drawn", 2)
                        event = envelope.payload()
                        assert isinstance(event, SampleDrawn)
                        if event.round_id == round_id:
                            raw = json.loads(r.value)
                            assert raw["version"] == 2
                            for person in raw["data"]["persons"]:
                                assert set(person) == SAMPLED_PERSON_FIELDS, sorted(person)
                                assert set(person["bands"]) == {"gender", "age_band", "duration_band"}
                            assert b"contact" not in r.value
                            out.append((r.value, event))
    finally:
        await consumer.stop()
    return out


async def consume_frame_margins(bootstrap: str, prefix: str, round_id: str, kommuner: set[str], timeout: float = 60) -> list[tuple[bytes, FrameMargins]]:
    """The round's frame.margins chunks as published (raw bytes) and parsed, until every one of
    `kommuner` has sent its final chunk."""
    consumer = AIOKafkaConsumer(f"{prefix}frame.margins", bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    out: list[tuple[bytes, FrameMargins]] = []
    try:
        async with asyncio.timeout(timeout):
            while {e.kommunekode for _, e in out if e.final} != kommuner:
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    for r in records:
                        event = Envelope.model_validate_json(r.value).payload()
                        assert isinstance(event, FrameMargins)
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
