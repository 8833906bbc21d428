"""Ingest over HTTP against real PostgreSQL and a real broker."""

from __future__ import annotations

import asyncio
import json

from aiokafka import AIOKafkaConsumer

from ingest_helpers import ensure_round
from services.ingest.config import IngestSettings
from services.ingest.main import create_app
from shared.events import Envelope, PopulationReceived
from shared.testing.fixtures import bearer, running_app, settings_from_env

ROWS = [
    {"cpr": "010190-1234", "ydelse": "Dagpenge", "overgangsdato": "2022-01-01", "telefon": "+4512345678", "navn": "Test Person"},
    {"cpr": "020285-2345", "ydelse": "Sygedagpenge", "overgangsdato": "2023-03-01"},
    {"cpr": "030375-3456", "ydelse": "Kontanthjælp - aktivitetsparat", "overgangsdato": "2021-06-01", "passiv": True},
    {"cpr": "320190-1234", "ydelse": "Dagpenge", "overgangsdato": "2022-01-01"},
    {"cpr": "040465-4567", "ydelse": "Ukendt ydelse", "overgangsdato": "2022-01-01"},
]


async def consume_all(bootstrap: str, topic: str, expected: int, timeout: float = 20) -> list[Envelope]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    out: list[Envelope] = []
    try:
        async with asyncio.timeout(timeout):
            while len(out) < expected:
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    out.extend(Envelope.model_validate_json(r.value) for r in records)
    finally:
        await consumer.stop()
    return out


async def test_delivery_is_stored_pseudonymised_and_published(service_env, dev_issuer, kafka_bootstrap, topic_prefix):
    app = create_app(settings_from_env(IngestSettings, service_env))
    token = dev_issuer.mint("momentum-dev", ["extracts:write", "extracts:read"], ["101"])
    async with running_app(app) as client:
        await ensure_round(client, dev_issuer, "2026-1")
        response = await client.post(
            "/rounds/2026-1/extracts/101",
            json={"reference_date": "2023-08-01", "rows": ROWS},
            headers=bearer(token),
        )
        assert response.status_code == 201, response.text
        report = response.json()
        assert report["rows_read"] == 5
        assert report["rows_valid"] == 2
        assert report["exclusions"] == {"passive": 1}
        assert {(e["row"], e["column"]) for e in report["errors"]} == {(4, "cpr"), (5, "ydelse")}
        assert "320190-1234" not in response.text  # the CPR is never echoed in full

        events = await consume_all(kafka_bootstrap, f"{topic_prefix}population.received", expected=1)
    payload = events[0].payload()
    assert isinstance(payload, PopulationReceived)
    assert payload.final and payload.person_count == 2
    assert {p.maalgruppe for p in payload.persons} == {"dagpenge", "sygedagpenge"}
    raw = json.dumps(events[0].model_dump(mode="json"))
    assert "0101901234" not in raw and "010190-1234" not in raw and "Test Person" not in raw


async def test_a_deliverys_events_go_out_at_its_commit_not_at_the_relays_next_poll(service_env, dev_issuer, kafka_bootstrap, topic_prefix):
    # The relays poll once a minute here: the events arrive because the commit wakes them.
    app = create_app(settings_from_env(IngestSettings, service_env, outbox_poll_interval_seconds=60.0))
    token = dev_issuer.mint("momentum-dev", ["extracts:write"], ["101"])
    async with running_app(app) as client:
        await ensure_round(client, dev_issuer, "2026-2")
        await asyncio.sleep(1.0)  # the relays have run their first pass and wait for a wake-up
        response = await client.post(
            "/rounds/2026-2/extracts/101", json={"reference_date": "2023-08-01", "rows": ROWS}, headers=bearer(token)
        )
        assert response.status_code == 201, response.text
        events = await consume_all(kafka_bootstrap, f"{topic_prefix}population.received", expected=1, timeout=15)
    assert events[0].payload().round_id == "2026-2"


async def test_wrong_municipality_and_missing_scope_are_refused(service_env, dev_issuer):
    app = create_app(settings_from_env(IngestSettings, service_env))
    async with running_app(app) as client:
        body = {"reference_date": "2023-08-01", "rows": ROWS[:1]}
        other = dev_issuer.mint("fasit-dev", ["extracts:write"], ["461"])
        assert (await client.post("/rounds/r1/extracts/101", json=body, headers=bearer(other))).status_code == 403
        reader = dev_issuer.mint("aarhus-bi", ["aggregates:read"], ["101"])
        assert (await client.post("/rounds/r1/extracts/101", json=body, headers=bearer(reader))).status_code == 403
        assert (await client.post("/rounds/r1/extracts/101", json=body)).status_code == 401
