"""population.received chunks cut from comma-joined persons by offsets, written into a real
PostgreSQL outbox table: the cut equals the person-by-person rule (at most ``size`` persons and
``max_bytes`` of persons' JSON per chunk, each chunk as full as the rule allows, only the last one
``final``), however the persons arrive in blocks."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import date

import asyncpg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.dialects import postgresql
from sqlalchemy.schema import CreateTable

from services.ingest.events import PopulationChunks
from services.ingest.models import POPULATION_OUTBOX
from shared.events import Envelope, PopulationReceived
from shared.db import to_plain_url
from shared.testing.fixtures import create_test_database

OUTBOX = POPULATION_OUTBOX.fullname
# The table as the service's models define it (the shared bulk outbox), in a fresh database.
TABLE = f"CREATE SCHEMA IF NOT EXISTS {POPULATION_OUTBOX.schema}; " + str(
    CreateTable(POPULATION_OUTBOX, if_not_exists=True).compile(dialect=postgresql.dialect())
)


def person(number: int, padding: int) -> bytes:
    return json.dumps(
        {
            "pseudonym": f"{number:064x}",
            "maalgruppe": "m" * (1 + padding),
            "bands": {"gender": "M", "age_band": "30-39", "duration_band": "12-23 mdr"},
        },
        separators=(",", ":"),
    ).encode()


def reference_cut(lengths: list[int], size: int, max_bytes: int) -> list[int]:
    """The rule person by person: a person joins the open chunk unless the chunk already has
    ``size`` persons or the person's JSON would take it over ``max_bytes`` (commas counted)."""
    chunks: list[int] = []
    count = used = 0
    for length in lengths:
        if count and (count >= size or used + length > max_bytes):
            chunks.append(count)
            count = used = 0
        count += 1
        used += length + 1
    chunks.append(count)
    return chunks


def blocks_of(persons: list[bytes], cuts: list[int]) -> list[tuple[bytes, list[int]]]:
    blocks, start = [], 0
    for end in [*sorted(set(c for c in cuts if 0 < c < len(persons))), len(persons)]:
        part = persons[start:end]
        offsets, position = [0], 0
        for p in part:
            position += len(p) + 1
            offsets.append(position)
        blocks.append((b",".join(part), offsets))
        start = end
    return blocks


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    paddings=st.lists(st.integers(0, 400), min_size=1, max_size=60),
    cuts=st.lists(st.integers(0, 60), max_size=6),
    size=st.integers(1, 12),
    max_bytes=st.integers(250, 2500),
)
def test_chunks_cut_by_offsets_equal_the_person_by_person_rule(postgres_admin_url, paddings, cuts, size, max_bytes):
    persons = [person(i, padding) for i, padding in enumerate(paddings)]
    asyncio.run(_check(postgres_admin_url, persons, cuts, size, max_bytes))


_database: dict[str, str] = {}


async def _check(admin_url: str, persons: list[bytes], cuts: list[int], size: int, max_bytes: int) -> None:
    if admin_url not in _database:
        _database[admin_url] = to_plain_url(await create_test_database(admin_url))
    conn = await asyncpg.connect(_database[admin_url])
    try:
        await conn.execute(TABLE)
        async with conn.transaction():
            delivery_id = uuid.uuid4()
            chunks = PopulationChunks(
                conn, OUTBOX, source="ingest", round_id="r1", kommunekode="101", delivery_id=delivery_id,
                supersedes=None, reference_date=date(2026, 1, 1), size=size, max_bytes=max_bytes,
            )
            for data, offsets in blocks_of(persons, cuts):
                await chunks.add(data, offsets)
            await chunks.finish()
            rows = await conn.fetch(
                f"SELECT envelope FROM {OUTBOX} WHERE correlation_id = $1 ORDER BY id", str(delivery_id)
            )
            payloads = [Envelope.model_validate_json(row["envelope"]).data for row in rows]
            events = [PopulationReceived.model_validate(payload) for payload in payloads]
            await conn.execute(f"DELETE FROM {OUTBOX} WHERE correlation_id = $1", str(delivery_id))
    finally:
        await conn.close()
    assert [len(e.persons) for e in events] == reference_cut([len(p) for p in persons], size, max_bytes)
    assert [p.pseudonym for e in events for p in e.persons] == [f"{i:064x}" for i in range(len(persons))]
    assert [e.chunk_no for e in events] == list(range(len(events)))
    assert [e.final for e in events] == [False] * (len(events) - 1) + [True]
    assert (events[-1].chunk_count, events[-1].person_count) == (len(events), len(persons))


def test_a_chunk_is_filled_to_the_byte(postgres_admin_url):
    persons = [person(i, padding) for i, padding in enumerate([3, 40, 7, 0])]
    exactly_two = len(persons[0]) + 1 + len(persons[1])  # the JSON of two persons and their comma
    for max_bytes, expected in ((exactly_two, [2, 2]), (exactly_two - 1, [1, 1, 2])):
        assert reference_cut([len(p) for p in persons], 10, max_bytes) == expected
        for cuts in ([], [1], [2], [1, 3]):
            asyncio.run(_check(postgres_admin_url, persons, cuts, 10, max_bytes))
