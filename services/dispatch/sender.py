"""The sender: delivers due steps through their channel, exactly once in effect.

Per batch, and never holding a transaction open across an external call:

1. **Claim** (one short transaction): lock due steps of active invitations (``FOR UPDATE SKIP
   LOCKED``, so replicas share the work; the invitation rows are locked too, so an answer being
   recorded right now either commits first and the step is not claimed, or waits for the claim),
   mark them ``sending`` with ``attempts + 1``, ``sending_since`` and ``claimed_by`` = this
   instance, and commit. The attempt is on record before anything leaves.
2. **Render** off the event loop (thread or process pool).
3. **Re-check** the invitations' status right before sending: an answer or opt-out recorded
   since the claim skips the step.
4. **Send** concurrently (rate-limited per channel), each with its idempotency key
   ``<invitation>.<step>.<channel>``, which every channel forwards to its receiver.
5. **Record** the results in one transaction: ``sent`` + ``invitation.sent`` (outbox, same
   transaction), transient failure -> ``planned`` again with exponential backoff (``failed``
   after ``max_attempts``), permanent failure -> ``failed`` with the redacted error (reported by
   ``GET /rounds/{id}/failures`` and the ``dispatch_messages_total`` metric), no phone -> skipped.

A crash between 1 and 5 leaves steps ``sending``. Each sender instance holds a session-level
PostgreSQL advisory lock on its own key for its lifetime; reconciliation (at start-up and
periodically) takes over the ``sending`` steps of every owner whose lock is free (it is dead)
and sends them again **with the same key**: the dev sink, SF1601 (X-TransaktionsId and the MeMo
messageUUID are derived from the key) and the SMS gateway (Idempotency-Key) deduplicate, so the
citizen gets one message. A live but slow owner is never robbed.

Residual window (honest): ``response.submitted`` reaches dispatch through the responses
service's outbox and Kafka, normally well under a second after the answer. A reminder whose
claim and re-check happen inside that lag, or in the milliseconds between the re-check and the
provider's acceptance, is still sent. An answer recorded by dispatch before the re-check is
never followed by a reminder.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from prometheus_client import Counter

from services.dispatch.channels.base import Channel, SendResult, SendStatus
from services.dispatch.compose import RenderJob, RenderOutcome, render_jobs
from services.dispatch.config import DispatchSettings
from services.dispatch.domain.letters import ContactInfo
from services.dispatch.domain.municipalities import municipality_name
from services.dispatch.links import link_token
from services.dispatch.models import DispatchStep, Invitation
from shared.crypto import SealedContact, open_contact
from shared.events import InvitationSent
from shared.observability import log_fields
from shared.runtime import ServiceRuntime

logger = logging.getLogger(__name__)

MESSAGES = Counter("dispatch_messages_total", "Dispatch send outcomes", ["channel", "outcome"])
RENDER_CHUNK = 50  # jobs per executor call: amortises the process pool's pickling

_STEPS = DispatchStep.__table__
_RESULT_UPDATE = (
    _STEPS.update()
    .where(
        _STEPS.c.invitation_id == sa.bindparam("b_invitation_id"),
        _STEPS.c.step == sa.bindparam("b_step"),
        _STEPS.c.channel == sa.bindparam("b_channel"),
        _STEPS.c.status == "sending",
        _STEPS.c.claimed_by == sa.bindparam("b_claimed_by"),  # only if our claim still stands
    )
    .values(
        status=sa.bindparam("status"),
        due_at=sa.bindparam("due_at"),
        sent_at=sa.bindparam("sent_at"),
        provider_reference=sa.bindparam("provider_reference"),
        last_error=sa.bindparam("last_error"),
        skip_reason=sa.bindparam("skip_reason"),
        claimed_by=None,
        sending_since=None,
    )
)


class Claimed:
    """A step claimed for sending, with what is needed to compose it (no ORM objects)."""

    __slots__ = ("invitation_id", "step", "channel", "attempts", "due_at", "round_id", "kommunekode", "pseudonym",
                 "token_nonce", "contact", "maalgruppe", "stratum", "arm", "created_at", "expires_at")

    def __init__(self, row) -> None:
        for name in self.__slots__:
            setattr(self, name, getattr(row, name))

    @property
    def key(self) -> str:
        return f"{self.invitation_id}.{self.step}.{self.channel}"


class Sender:
    def __init__(self, settings: DispatchSettings, channels: dict[str, Channel], executor: Executor | None = None,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.settings = settings
        self.channels = channels
        self.executor = executor
        self.clock = clock
        # Random per instance: the advisory lock on it says "this sender is alive".
        self.instance_key = secrets.randbits(62)
        self._semaphore = asyncio.Semaphore(settings.send_concurrency)

    # --- the worker ------------------------------------------------------------------------------

    async def run(self, runtime: ServiceRuntime) -> None:
        # A fresh key per run: if the worker died and was restarted in this process, the claims
        # of the previous run belong to a released key and are reconciled like a dead replica's.
        self.instance_key = secrets.randbits(62)
        async with runtime.engine.connect() as lock_conn:
            await lock_conn.execute(sa.select(sa.func.pg_advisory_lock(self.instance_key)))
            await lock_conn.commit()
            try:
                await self.reconcile(runtime)
                last_reconcile = time.monotonic()
                while True:
                    handled = await self.send_batch(runtime)
                    if time.monotonic() - last_reconcile > self.settings.reconcile_interval_seconds:
                        await self.reconcile(runtime)
                        last_reconcile = time.monotonic()
                    if handled < self.settings.sender_batch_size:
                        await asyncio.sleep(self.settings.sender_interval_seconds)
            finally:
                # Session locks survive a connection's return to the pool: release it explicitly,
                # or drop the connection if that fails.
                try:
                    await asyncio.shield(lock_conn.execute(sa.select(sa.func.pg_advisory_unlock(self.instance_key))))
                    await lock_conn.commit()
                except BaseException:
                    await lock_conn.invalidate()
                    raise

    async def reconcile(self, runtime: ServiceRuntime) -> int:
        """Requeue the ``sending`` steps of dead sender instances (same key, so no double send)."""
        async with runtime.engine.connect() as conn:
            owners = (
                await conn.execute(
                    sa.select(DispatchStep.claimed_by).distinct().where(DispatchStep.status == "sending")
                )
            ).scalars().all()
            await conn.commit()
            requeued = 0
            for owner in owners:
                if owner == self.instance_key:
                    continue
                if owner is not None:
                    if not await conn.scalar(sa.select(sa.func.pg_try_advisory_lock(owner))):
                        continue  # alive: its sends are in flight
                try:
                    owner_filter = DispatchStep.claimed_by == owner if owner is not None else DispatchStep.claimed_by.is_(None)
                    result = await conn.execute(
                        sa.update(DispatchStep)
                        .where(DispatchStep.status == "sending", owner_filter, Invitation.id == DispatchStep.invitation_id)
                        .values(
                            # Answered meanwhile: a reminder no longer goes out.
                            status=sa.case((Invitation.status == "active", "planned"), else_="skipped"),
                            skip_reason=sa.case((Invitation.status == "active", None), else_=Invitation.status),
                            due_at=sa.func.now(),
                            claimed_by=None,
                            sending_since=None,
                        )
                    )
                    await conn.commit()
                    requeued += result.rowcount
                finally:
                    if owner is not None:
                        await conn.execute(sa.select(sa.func.pg_advisory_unlock(owner)))
                        await conn.commit()
            if requeued:
                logger.warning("requeued steps of a dead sender; resending with the same keys", extra=log_fields(steps=requeued))
            return requeued

    # --- one batch -------------------------------------------------------------------------------

    async def send_batch(self, runtime: ServiceRuntime) -> int:
        claimed = await self.claim(runtime)
        if not claimed:
            return 0
        outcomes = await self.render(claimed)
        inactive = await self.inactive_invitations(runtime, {c.invitation_id for c in claimed})
        results = await asyncio.gather(*(self.deliver(c, outcomes[c.key], inactive) for c in claimed))
        await self.record(runtime, claimed, results)
        return len(claimed)

    async def claim(self, runtime: ServiceRuntime) -> list[Claimed]:
        now = self.clock()
        async with runtime.uow() as uow:
            rows = (
                await uow.session.execute(
                    sa.select(
                        DispatchStep.invitation_id, DispatchStep.step, DispatchStep.channel, DispatchStep.attempts,
                        DispatchStep.due_at, Invitation.round_id, Invitation.kommunekode, Invitation.pseudonym,
                        Invitation.token_nonce, Invitation.contact, Invitation.maalgruppe, Invitation.stratum,
                        Invitation.arm, Invitation.created_at, Invitation.expires_at,
                    )
                    .join(Invitation, Invitation.id == DispatchStep.invitation_id)
                    .where(DispatchStep.status == "planned", DispatchStep.due_at <= now, Invitation.status == "active")
                    .order_by(DispatchStep.due_at)
                    .limit(self.settings.sender_batch_size)
                    .with_for_update(skip_locked=True)
                )
            ).all()
            if not rows:
                return []
            claimed = [Claimed(row) for row in rows]
            await uow.session.execute(
                sa.update(DispatchStep)
                .where(sa.tuple_(DispatchStep.invitation_id, DispatchStep.step, DispatchStep.channel).in_(
                    [(c.invitation_id, c.step, c.channel) for c in claimed]))
                .values(status="sending", attempts=DispatchStep.attempts + 1, sending_since=now,
                        claimed_by=self.instance_key)
            )
            await uow.commit()  # the attempt is on record before anything is sent
        for c in claimed:
            c.attempts += 1
        return claimed

    def job_for(self, c: Claimed) -> RenderJob:
        s = self.settings
        contact = open_contact(SealedContact.model_validate(c.contact), round_id=c.round_id, pseudonym=c.pseudonym,
                               keyring=s.contact_keyring)
        name = municipality_name(c.kommunekode)
        return RenderJob(
            key=c.key, step=c.step, channel=c.channel, sms_via=s.sms_channel, cpr=contact.cpr, name=contact.name,
            phone=contact.phone_e164, exempt=contact.digital_post_exempt,
            link=s.survey_base_url + link_token(s.link_key_bytes, c.token_nonce), municipality=name,
            sender_cvr=s.sender_cvr_by_kommune.get(c.kommunekode, s.default_sender_cvr),
            deadline=(c.created_at + timedelta(days=s.response_deadline_days)).date(),
            letter_date=self.clock().date(), action_end=c.expires_at,
            contact=ContactInfo(f"{s.contact_name} i {name}" if s.contact_name == "jobcentret" else s.contact_name,
                                s.contact_phone, s.contact_email),
            privacy_url=s.privacy_url, validate_all=s.memo_validate_all,
        )

    async def render(self, claimed: list[Claimed]) -> dict[str, RenderOutcome]:
        jobs: list[RenderJob] = []
        outcomes: dict[str, RenderOutcome] = {}
        for c in claimed:
            try:
                jobs.append(self.job_for(c))
            except Exception as exc:  # noqa: BLE001 - e.g. a contact sealed under an unknown key
                outcomes[c.key] = RenderOutcome(c.key, error=f"cannot open contact: {type(exc).__name__}")
        chunks = [jobs[i : i + RENDER_CHUNK] for i in range(0, len(jobs), RENDER_CHUNK)]
        loop = asyncio.get_running_loop()
        if self.executor is not None:
            rendered = await asyncio.gather(*(loop.run_in_executor(self.executor, render_jobs, chunk) for chunk in chunks))
        else:
            rendered = [await asyncio.to_thread(render_jobs, chunk) for chunk in chunks]
        for chunk in rendered:
            outcomes.update((o.key, o) for o in chunk)
        return outcomes

    async def inactive_invitations(self, runtime: ServiceRuntime, ids: set) -> dict:
        async with runtime.sessionmaker() as session:
            rows = await session.execute(
                sa.select(Invitation.id, Invitation.status).where(Invitation.id.in_(ids), Invitation.status != "active")
            )
            return dict(rows.all())

    async def deliver(self, c: Claimed, outcome: RenderOutcome, inactive: dict) -> tuple[str, SendResult | None, str | None]:
        """Returns (outcome, result, skip reason)."""
        if c.invitation_id in inactive:
            return "skipped", None, inactive[c.invitation_id]
        if outcome.skip_reason:
            return "skipped", None, outcome.skip_reason
        if outcome.error:
            return "failed", SendResult.permanent(outcome.error), None
        async with self._semaphore:
            try:
                result = await self.channels[c.channel].send(outcome.message)
            except Exception as exc:  # noqa: BLE001 - channels classify, but a bug must not lose the batch
                result = SendResult.transient(f"channel raised {type(exc).__name__}")
        return result.status.value, result, None

    async def record(self, runtime: ServiceRuntime, claimed: list[Claimed], results) -> None:
        now = self.clock()
        s = self.settings
        updates = []
        async with runtime.uow() as uow:
            for c, (outcome, result, skip_reason) in zip(claimed, results, strict=True):
                values = {"b_invitation_id": c.invitation_id, "b_step": c.step, "b_channel": c.channel,
                          "b_claimed_by": self.instance_key, "due_at": c.due_at, "sent_at": None,
                          "provider_reference": None, "last_error": None, "skip_reason": skip_reason}
                if result is not None:
                    values["provider_reference"] = result.provider_reference
                    values["last_error"] = result.error
                if outcome == "skipped":
                    values["status"] = "skipped"
                elif result.status is SendStatus.SENT:
                    values.update(status="sent", sent_at=now)
                    uow.publish(
                        InvitationSent(
                            round_id=c.round_id, kommunekode=c.kommunekode, pseudonym=c.pseudonym, step=c.step,
                            channel=self.event_channel(c, outcome), maalgruppe=c.maalgruppe, stratum=c.stratum,
                            arm=c.arm, sent_at=now,
                        )
                    )
                elif result.status is SendStatus.TRANSIENT_FAILURE and c.attempts < s.max_attempts:
                    backoff = min(s.retry_backoff_seconds * 2 ** (c.attempts - 1), 3600)
                    values.update(status="planned", due_at=now + timedelta(seconds=backoff))
                else:
                    values["status"] = "failed"
                    logger.warning("message failed permanently",
                                   extra=log_fields(key=c.key, attempts=c.attempts, error=result.error))
                MESSAGES.labels(c.channel, values["status"]).inc()
                updates.append(values)
            await uow.session.execute(_RESULT_UPDATE, updates)
            await self.before_result_commit(claimed)
            await uow.commit()

    def event_channel(self, c: Claimed, outcome) -> str:
        return "sms" if c.channel == "sms" else "digital_post"

    async def before_result_commit(self, claimed: list[Claimed]) -> None:
        """Hook for crash tests."""


def make_executor(settings: DispatchSettings) -> Executor | None:
    if settings.render_processes <= 0:
        return None
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: forking a process with a running event loop and threads is unsafe.
    return ProcessPoolExecutor(settings.render_processes, mp_context=multiprocessing.get_context("spawn"))


__all__ = ["Sender", "make_executor"]
