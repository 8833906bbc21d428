"""Helpers for the responses tests: issue links over the real broker, read events back, and
pull the CSRF token out of a rendered form."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer

from services.responses.models import Respondent
from shared.bus import make_producer
from shared.events import Bands, Envelope, LinkIssued

CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def new_token() -> str:
    return secrets.token_urlsafe(24)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def link_issued(token: str, *, round_id: str = "r-test", kommunekode: str = "101", expires_in: timedelta = timedelta(days=21)) -> LinkIssued:
    return LinkIssued(
        round_id=round_id,
        kommunekode=kommunekode,
        pseudonym="ps-" + token_hash(token)[:16],
        token_hash=token_hash(token),
        maalgruppe="dagpenge",
        stratum=f"{kommunekode}|dagpenge",
        bands=Bands(gender="K", age_band="30-39", duration_band="12-24m"),
        design_weight=2.5,
        arm="a",
        expires_at=datetime.now(UTC) + expires_in,
    )


async def produce(bootstrap: str, prefix: str, payloads) -> None:
    producer = make_producer(bootstrap, "responses-test")
    await producer.start()
    try:
        for payload in payloads:
            envelope = Envelope.wrap(payload, source="test", correlation_id="responses-test")
            await producer.send(f"{prefix}{payload.event_type}", envelope.model_dump_json().encode(), key=payload.key().encode())
        await producer.flush()
    finally:
        await producer.stop()


async def wait_for_respondents(runtime, hashes: list[str], timeout: float = 60) -> None:
    """Until responses has consumed link.issued for every hash (checked in the database, so the
    unknown-token rate limit is not drained by polling)."""
    async with asyncio.timeout(timeout):
        while True:
            async with runtime.sessionmaker() as session:
                found = (await session.execute(sa.select(sa.func.count()).where(Respondent.token_hash.in_(hashes)))).scalar_one()
            if found == len(hashes):
                return
            await asyncio.sleep(0.1)


async def issue(app, bootstrap: str, prefix: str, n: int = 1, **kwargs) -> list[str]:
    tokens = [new_token() for _ in range(n)]
    await produce(bootstrap, prefix, [link_issued(t, **kwargs) for t in tokens])
    await wait_for_respondents(app.state.runtime, [token_hash(t) for t in tokens])
    return tokens


async def read_events(bootstrap: str, topic: str, want: int, timeout: float = 30) -> list[dict]:
    """Envelopes on ``topic`` from the beginning, waiting until at least ``want`` arrived."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False, group_id=None)
    await consumer.start()
    events: list[dict] = []
    try:
        async with asyncio.timeout(timeout):
            while len(events) < want:
                batch = await consumer.getmany(timeout_ms=300)
                for records in batch.values():
                    events += [json.loads(r.value) for r in records]
        # A little longer, to catch duplicates that should not be there.
        batch = await consumer.getmany(timeout_ms=500)
        for records in batch.values():
            events += [json.loads(r.value) for r in records]
    finally:
        await consumer.stop()
    return events


def csrf_of(html: str) -> str:
    match = CSRF_INPUT.search(html)
    assert match, "no CSRF field in the form"
    return match.group(1)
