"""Helpers for the responses tests: issue links over the real broker, read events back, and
pull the CSRF token out of a rendered form."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import secrets
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer

from services.responses.models import Respondent, RoundState
from shared.bus import make_producer
from shared.events import Bands, Envelope, LinkIssued, RoundDefined

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


def round_defined(round_id: str, revision: int, phase: str = "in_fieldwork", *,
                  fieldwork_ends_at: datetime | None = None) -> RoundDefined:
    """The round's definition as ingest sends it (only the phase and the end matter here)."""
    now = datetime.now(UTC)
    return RoundDefined(round_id=round_id, revision=revision, name=f"Runde {round_id}", reference_date=date(2026, 8, 1),
                        maalgruppe_mapping_version="v1", invitation_at=now - timedelta(days=1),
                        fieldwork_ends_at=fieldwork_ends_at, retention_days=365, phase=phase, phase_changed_at=now)


async def define_round(app, bootstrap: str, prefix: str, event: RoundDefined, timeout: float = 60) -> None:
    """Publish the definition and wait until responses keeps it (or a higher revision)."""
    await produce(bootstrap, prefix, [event])
    async with asyncio.timeout(timeout):
        while True:
            async with app.state.runtime.sessionmaker() as session:
                kept = await session.get(RoundState, event.round_id)
            if kept is not None and kept.revision >= event.revision:
                return
            await asyncio.sleep(0.1)
