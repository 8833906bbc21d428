"""Shared helpers for ingest's integration tests."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.events import Envelope
from shared.testing.fixtures import bearer
from shared.testing.round import define_round

CORPUS = Path(__file__).parent / "corpus"
REFERENCE_DATE = "2023-08-01"
CSV = "text/csv"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def service_env_for(database_url: str, kafka_bootstrap: str, topic_prefix: str, dev_issuer, data_keys, tmp: Path) -> dict:
    """As the ``service_env`` fixture, for fixtures that outlive one test."""
    return {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "KAFKA_TOPIC_PREFIX": topic_prefix,
        "AUTH_JWKS_JSON": dev_issuer.jwks_json(),
        "OUTBOX_POLL_INTERVAL_SECONDS": "0.05",
        "LOG_JSON": "true",
        "UPLOAD_DIR": str(tmp / "uploads"),
        "JOB_POLL_INTERVAL_SECONDS": "0.1",
        "INGEST_PREWARM_WORKERS": "false",  # the corpus files are small: prepared in a thread
        **data_keys,
    }


async def upload(
    client: httpx.AsyncClient,
    token: str | None,
    content,
    *,
    round_id: str,
    kommunekode: str = "101",
    content_type: str = CSV,
    **params: str,
) -> httpx.Response:
    headers = {"Content-Type": content_type, **(bearer(token) if token else {})}
    return await client.post(
        f"/rounds/{round_id}/extracts/{kommunekode}/files",
        content=content,
        params={"reference_date": REFERENCE_DATE, **params},
        headers=headers,
    )


async def wait_for_job(client: httpx.AsyncClient, token: str, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get(f"/jobs/{job_id}", headers=bearer(token))
        assert response.status_code == 200, response.text
        job = response.json()
        if job["status"] not in ("queued", "running"):
            return job
        if time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} still {job['status']} after {timeout} s")
        await asyncio.sleep(0.05)


async def upload_and_wait(client, token, content, **kwargs) -> dict:
    response = await upload(client, token, content, **kwargs)
    assert response.status_code == 202, response.text
    return await wait_for_job(client, token, response.json()["job_id"])


async def fetch(database_url: str, query: str, *args):
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch(query, *args)
    finally:
        await conn.close()


async def citizens_of_round(database_url: str, round_id: str) -> int:
    rows = await fetch(
        database_url,
        "SELECT count(*) AS n FROM ingest.citizen c JOIN ingest.delivery d ON d.id = c.delivery_id WHERE d.round_id = $1",
        round_id,
    )
    return rows[0]["n"]


async def deliveries_of_round(database_url: str, round_id: str) -> list:
    return await fetch(database_url, "SELECT * FROM ingest.delivery WHERE round_id = $1 ORDER BY created_at", round_id)


async def all_events(bootstrap: str, topic: str, settle: float = 0.5) -> list[Envelope]:
    """Every event on ``topic`` up to its current end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, group_id=None)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic)
        if partitions is None:
            await consumer._client.force_metadata_update()  # noqa: SLF001 - a new topic
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in partitions]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        out: list[Envelope] = []
        async with asyncio.timeout(30):
            while any([await consumer.position(tp) < ends[tp] for tp in tps]):
                batch = await consumer.getmany(timeout_ms=200)
                for records in batch.values():
                    out.extend(Envelope.model_validate_json(r.value) for r in records)
        return out
    finally:
        await consumer.stop()


async def wait_outbox_empty(database_url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    query = "SELECT (SELECT count(*) FROM ingest.outbox) + (SELECT count(*) FROM ingest.bulk_outbox) AS n"
    while (await fetch(database_url, query))[0]["n"]:
        if time.monotonic() > deadline:
            raise TimeoutError("the outbox did not drain")
        await asyncio.sleep(0.1)


async def ensure_round(client: httpx.AsyncClient, dev_issuer, round_id: str, **overrides) -> None:
    """The round defined at ingest by KL's operator, unless it already is (tests that deliver
    to one round several times)."""
    operator = dev_issuer.mint("kl-operator", ["rounds:admin", "kommuner:all"])
    if (await client.get(f"/rounds/{round_id}", headers=bearer(operator))).status_code == 404:
        await define_round(client, operator, round_id, **overrides)


async def new_round(stack: dict, **overrides) -> str:
    """A fresh round, defined at ingest by KL's operator (``stack`` holds the client and the
    operator's token), so that deliveries for it are taken."""
    round_id = f"r-{uuid.uuid4().hex[:10]}"
    await define_round(stack["client"], stack["operator"], round_id, **overrides)
    return round_id
