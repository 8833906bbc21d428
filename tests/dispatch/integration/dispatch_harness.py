"""Helpers for the dispatch service tests: synthetic samples and ingest's contact releases,
producing events, waiting."""

from __future__ import annotations

import asyncio
import base64
import json
import random
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import sqlalchemy as sa
from aiokafka import AIOKafkaConsumer

from services.dispatch.channels.base import Channel, OutgoingMessage, SendResult
from services.dispatch.config import DispatchSettings
from services.dispatch.main import MIGRATIONS
from services.dispatch.models import BUS, DispatchStep, Invitation, ReleasedContactRow
from shared.bus import handler_table
from shared.crypto import ContactDetails, seal_contact
from shared.events import (
    Bands,
    ContactsReleased,
    Envelope,
    ReleasedContact,
    ResponseOptedOut,
    ResponseSubmitted,
    RoundDefined,
    SampleDrawn,
    SampleDrawnV1,
    SampledPerson,
    SampledPersonV1,
    SendingWindow,
)
from shared.runtime import ServiceRuntime
from shared.testing.fixtures import publish_events, settings_from_env

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit"))  # the unit tests' fakes



# Open all day: CI runs at night.
ALL_DAY = SendingWindow(start=time(0, 0), end=time(23, 59, 59, 999999))


def round_defined(round_id: str, revision: int = 1, *, phase: str = "fieldwork_scheduled",
                  invitation_at: datetime | None | str = "now", reminders_at: list[datetime] = (),
                  fieldwork_ends_at: datetime | None = None, window: SendingWindow = ALL_DAY) -> RoundDefined:
    """The round's definition as ingest sends it; by default scheduled with the invitation due now."""
    now = datetime.now(UTC)
    return RoundDefined(
        round_id=round_id, revision=revision, name=f"Runde {round_id}", reference_date=date(2026, 8, 1),
        maalgruppe_mapping_version="v1", questionnaire_version="kl_core_v1", kommuner=[],
        invitation_at=now - timedelta(seconds=1) if invitation_at == "now" else invitation_at,
        reminders_at=list(reminders_at), fieldwork_ends_at=fieldwork_ends_at, sending_window=window,
        retention_days=365, phase=phase, phase_changed_at=now,
    )


def make_settings(env: dict[str, str], **overrides) -> DispatchSettings:
    defaults = {"sender_interval_seconds": 0.05, "reconcile_interval_seconds": 1.0, "retry_backoff_seconds": 0.1}
    return settings_from_env(DispatchSettings, env, **{**defaults, **overrides})


def contact_key(env: dict[str, str]) -> tuple[str, bytes]:
    key_id, key = next(iter(json.loads(env["CONTACT_KEYS"]).items()))
    return key_id, base64.b64decode(key)


@dataclass(frozen=True)
class DrawnChunk:
    """One sample.drawn chunk as sampling now publishes it (v2: no contacts) and ingest's answer
    to it (contacts.released: the sealed contacts, and the pseudonyms it holds none for)."""

    sample: SampleDrawn
    release: ContactsReleased

    @property
    def round_id(self) -> str:
        return self.sample.round_id

    @property
    def kommunekode(self) -> str:
        return self.sample.kommunekode

    @property
    def persons(self) -> list[SampledPerson]:
        return self.sample.persons

    @property
    def events(self) -> tuple[SampleDrawn, ContactsReleased]:
        """In the order ingest answers; dispatch may still get them the other way round."""
        return self.sample, self.release

    def as_v1(self) -> SampleDrawnV1:
        """The same chunk as sampling published it before contacts.released existed."""
        contacts = {c.pseudonym: c.contact for c in self.release.contacts}
        persons = [SampledPersonV1(**p.model_dump(), contact=contacts[p.pseudonym]) for p in self.sample.persons]
        return SampleDrawnV1(**self.sample.model_dump(exclude={"persons"}), persons=persons)


def sample(env, round_id: str, kommunekode: str, n: int, *, exempt: set[int] = frozenset(), no_phone: set[int] = frozenset(),
           missing: set[int] = frozenset(), seed: int = 1, draw_id: uuid.UUID | None = None, chunk_no: int = 0,
           chunk_count: int = 1) -> DrawnChunk:
    """`n` synthetic citizens; those at the indexes in `missing` have no contact left at ingest."""
    key_id, key = contact_key(env)
    rng = random.Random(f"{seed}-{chunk_no}")
    persons, released, not_held = [], [], []
    for i in range(n):
        pseudonym = f"p{kommunekode}-{seed}-{chunk_no}-{i:05d}"
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
            )
        )
        if i in missing:
            not_held.append(pseudonym)
        else:
            sealed = seal_contact(contact, round_id=round_id, pseudonym=pseudonym, key_id=key_id, key=key)
            released.append(ReleasedContact(pseudonym=pseudonym, contact=sealed))
    draw_id = draw_id or uuid.uuid4()
    final = chunk_no == chunk_count - 1
    return DrawnChunk(
        sample=SampleDrawn(round_id=round_id, kommunekode=kommunekode, draw_id=draw_id, seed=42, chunk_no=chunk_no,
                           final=final, chunk_count=chunk_count if final else None, persons=persons),
        release=ContactsReleased(round_id=round_id, kommunekode=kommunekode, draw_id=draw_id, chunk_no=chunk_no,
                                 contacts=released, missing=not_held),
    )


def answered(event: DrawnChunk, pseudonym: str) -> ResponseSubmitted:
    return ResponseSubmitted(round_id=event.round_id, kommunekode=event.kommunekode, pseudonym=pseudonym,
                             questionnaire_id="kl_core", questionnaire_version=1, mode="web", maalgruppe="Dagpenge",
                             stratum=f"{event.kommunekode}:Dagpenge", bands=Bands(gender="K", age_band="30-39", duration_band="0-6m"),
                             design_weight=2.0, answers={"q1": 4}, submitted_at=datetime.now(UTC))


def opted_out(event: DrawnChunk, pseudonym: str) -> ResponseOptedOut:
    return ResponseOptedOut(round_id=event.round_id, kommunekode=event.kommunekode, pseudonym=pseudonym,
                            stratum=f"{event.kommunekode}:Dagpenge", opted_out_at=datetime.now(UTC))


@asynccontextmanager
async def dispatch_runtime(env: dict[str, str], **overrides) -> AsyncIterator[ServiceRuntime]:
    """Dispatch's migrated database and outbox (relayed to the broker) without its consumer or
    sender: the test hands events to the handlers itself, in the order and transactions it wants."""
    async with ServiceRuntime(make_settings(env, **overrides), tables=BUS, migrations_dir=MIGRATIONS) as runtime:
        yield runtime


async def handle(runtime: ServiceRuntime, handlers: dict, payload) -> None:
    """One event through its handler in a transaction of its own, decoded from its envelope as
    the consumer decodes it (by type and version)."""
    envelope = Envelope.model_validate_json(Envelope.wrap(payload, source="test", correlation_id="test").model_dump_json())
    async with runtime.uow() as uow:
        await handler_table(handlers)[envelope.type](uow, envelope, envelope.payload())
        await uow.commit()


@dataclass(frozen=True)
class CitizenState:
    contact: dict | None  # the sealed contact as stored
    steps: frozenset[tuple[str, str, str, str | None]]  # (step, channel, status, skip_reason)


async def contact_states(runtime: ServiceRuntime, round_id: str) -> tuple[dict[str, CitizenState], dict[str, dict | None]]:
    """Per pseudonym of the round, its invitation's contact and steps; and the releases kept for
    citizens without an invitation."""
    async with runtime.sessionmaker() as session:
        invitations_ = (
            await session.execute(sa.select(Invitation.id, Invitation.pseudonym, Invitation.contact)
                                  .where(Invitation.round_id == round_id))
        ).all()
        steps = (
            await session.execute(
                sa.select(DispatchStep.invitation_id, DispatchStep.step, DispatchStep.channel, DispatchStep.status,
                          DispatchStep.skip_reason)
                .join(Invitation, Invitation.id == DispatchStep.invitation_id)
                .where(Invitation.round_id == round_id)
            )
        ).all()
        kept = (
            await session.execute(sa.select(ReleasedContactRow.pseudonym, ReleasedContactRow.contact)
                                  .where(ReleasedContactRow.round_id == round_id))
        ).all()
    by_invitation: dict = {}
    for invitation_id, *step in steps:
        by_invitation.setdefault(invitation_id, set()).add(tuple(step))
    states = {pseudonym: CitizenState(contact, frozenset(by_invitation.get(invitation_id, ())))
              for invitation_id, pseudonym, contact in invitations_}
    return states, dict(kept)


def completed_states(*chunks: DrawnChunk, steps=(("invitation", "letter"), ("reminder_1", "letter"),
                                                 ("reminder_2", "letter"))) -> dict[str, CitizenState]:
    """What every citizen of the chunks ends as once sample and release have both arrived: the
    released contact with every step planned, or no contact with every step skipped."""
    states = {}
    for chunk in chunks:
        for released in chunk.release.contacts:
            states[released.pseudonym] = CitizenState(
                released.contact.model_dump(), frozenset((s, c, "planned", None) for s, c in steps))
        for pseudonym in chunk.release.missing:
            states[pseudonym] = CitizenState(None, frozenset((s, c, "skipped", "no_contact") for s, c in steps))
    return states


async def produce(env: dict[str, str], *payloads) -> None:
    await publish_events(env["KAFKA_BOOTSTRAP_SERVERS"], env["KAFKA_TOPIC_PREFIX"], payloads)


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
    """Idempotency key -> file, over the sink's folders (one per round and municipality)."""
    return {p.stem: p for p in sink.rglob("*") if p.is_file() and not p.name.startswith(".")} if sink.exists() else {}


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
