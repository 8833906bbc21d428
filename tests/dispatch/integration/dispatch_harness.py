"""Helpers for the dispatch service tests: synthetic samples, producing events, waiting."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.dispatch.channels.base import Channel, OutgoingMessage, SendResult
from services.dispatch.config import DispatchSettings
from services.dispatch.models import DispatchStep, Invitation
from shared.crypto import ContactDetails, seal_contact
from shared.events import Bands, Envelope, ResponseOptedOut, ResponseSubmitted, SampleDrawn, SampledPerson
from shared.testing.fixtures import settings_from_env

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))  # the unit tests' fakes



def make_settings(env: dict[str, str], **overrides) -> DispatchSettings:
    defaults = {"sender_interval_seconds": 0.05, "reconcile_interval_seconds": 1.0, "retry_backoff_seconds": 0.1}
    return settings_from_env(DispatchSettings, env, **{**defaults, **overrides})


def contact_key(env: dict[str, str]) -> tuple[str, bytes]:
    key_id, key = next(iter(json.loads(env["CONTACT_KEYS"]).items()))
    return key_id, base64.b64decode(key)


def sample(env, round_id: str, kommunekode: str, n: int, *, exempt: set[int] = frozenset(), no_phone: set[int] = frozenset(),
           seed: int = 1) -> SampleDrawn:
    key_id, key = contact_key(env)
    rng = random.Random(seed)
    persons = []
    for i in range(n):
        pseudonym = f"p{kommunekode}-{seed}-{i:05d}"
        contact = ContactDetails(
            cpr=f"{rng.randrange(1, 28):02d}0{rng.randrange(1, 9)}8{rng.randrange(0, 9)}-{rng.randrange(1000, 9999)}",
            name=f"Testperson Ærø {i}",
            phone_e164=None if i in no_phone else f"+452{rng.randrange(1000000, 9999999)}",
            digital_post_exempt=i in exempt,
        )
        persons.append(
            SampledPerson(
                pseudonym=pseudonym, maalgruppe="Dagpenge", stratum=f"{kommunekode}:Dagpenge",
                bands=Bands(gender="K", age_band="30-39", duration_band="0-6m"), inclusion_probability=0.5,
                design_weight=2.0,
                contact=seal_contact(contact, round_id=round_id, pseudonym=pseudonym, key_id=key_id, key=key),
            )
        )
    return SampleDrawn(round_id=round_id, kommunekode=kommunekode, draw_id=uuid.uuid4(), seed=42, chunk_no=0, final=True,
                       chunk_count=1, persons=persons)


def answered(event: SampleDrawn, pseudonym: str) -> ResponseSubmitted:
    return ResponseSubmitted(round_id=event.round_id, kommunekode=event.kommunekode, pseudonym=pseudonym,
                             questionnaire_id="kl_core", questionnaire_version=1, mode="web", maalgruppe="Dagpenge",
                             stratum=f"{event.kommunekode}:Dagpenge", bands=Bands(gender="K", age_band="30-39", duration_band="0-6m"),
                             design_weight=2.0, answers={"q1": 4}, submitted_at=datetime.now(UTC))


def opted_out(event: SampleDrawn, pseudonym: str) -> ResponseOptedOut:
    return ResponseOptedOut(round_id=event.round_id, kommunekode=event.kommunekode, pseudonym=pseudonym,
                            stratum=f"{event.kommunekode}:Dagpenge", opted_out_at=datetime.now(UTC))


async def produce(env: dict[str, str], *payloads) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"], max_request_size=8 * 1024 * 1024)
    await producer.start()
    try:
        for payload in payloads:
            envelope = Envelope.wrap(payload, source="test", correlation_id="test")
            await producer.send_and_wait(env["KAFKA_TOPIC_PREFIX"] + payload.topic,
                                         value=envelope.model_dump_json().encode(), key=payload.key().encode())
    finally:
        await producer.stop()


async def consume_all(env: dict[str, str], topic: str, expected: int, timeout: float = 20.0) -> list[dict]:
    """Events on `topic` (at least `expected`, then a short quiet period to catch duplicates)."""
    consumer = AIOKafkaConsumer(env["KAFKA_TOPIC_PREFIX"] + topic, bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
                                auto_offset_reset="earliest", enable_auto_commit=False, group_id=None)
    await consumer.start()
    found: list[dict] = []
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        quiet_until = None
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                found.extend(json.loads(r.value)["data"] for r in records)
            if len(found) >= expected:
                quiet_until = quiet_until or loop.time() + 1.0
                if loop.time() >= quiet_until:
                    break
    finally:
        await consumer.stop()
    return found


async def wait_for(check, timeout: float = 30.0, what: str = "condition", interval: float = 0.1):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last = None
    while loop.time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what} (last: {last!r})")


async def step_statuses(app, round_id: str) -> Counter:
    async with app.state.runtime.sessionmaker() as session:
        rows = await session.execute(
            sa.select(DispatchStep.step, DispatchStep.channel, DispatchStep.status, sa.func.count())
            .join(Invitation, Invitation.id == DispatchStep.invitation_id)
            .where(Invitation.round_id == round_id)
            .group_by(DispatchStep.step, DispatchStep.channel, DispatchStep.status)
        )
        return Counter({(s, c, st): n for s, c, st, n in rows.all()})


async def invitations(app, round_id: str) -> list[Invitation]:
    async with app.state.runtime.sessionmaker() as session:
        return list((await session.execute(sa.select(Invitation).where(Invitation.round_id == round_id))).scalars())


def sink_files(sink: Path) -> dict[str, Path]:
    return {p.stem: p for p in sink.iterdir() if not p.name.startswith(".")} if sink.exists() else {}


class SimulatedCrash(BaseException):
    """Not an Exception: nothing in the service catches it, like a process dying at that line."""


class RecordingChannel(Channel):
    """Counts every send per idempotency key; can 'crash' at the Nth call, before or after the
    inner channel accepted the message."""

    def __init__(self, inner: Channel, *, crash_at: int | None = None, crash_after_accept: bool = False) -> None:
        self.inner = inner
        self.name = inner.name
        self.calls: Counter = Counter()
        self.n = 0
        self.crash_at = crash_at
        self.crash_after_accept = crash_after_accept
        self.crashed = False

    async def send(self, message: OutgoingMessage) -> SendResult:
        self.n += 1
        crash = self.crash_at is not None and self.n == self.crash_at
        if crash and not self.crash_after_accept:
            self.crashed = True
            raise SimulatedCrash("after recording the attempt, before the call")
        self.calls[message.idempotency_key] += 1
        result = await self.inner.send(message)
        if crash:
            self.crashed = True
            raise SimulatedCrash("after the channel accepted")
        return result

    async def aclose(self) -> None:
        await self.inner.aclose()
