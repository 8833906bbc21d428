"""The sender: delivers due steps through their channel, exactly once in effect.

Per batch, and never holding a transaction open across an external call:

0. **Schedules**: read the rounds' definitions (round.defined; a small table): which rounds may
   send on which channel now (``domain/schedule.py``); every few seconds, cancel the unsent
   steps of rounds whose fieldwork is over and move steps due while their window is closed to
   its next opening.
1. **Claim** (one statement, one short transaction): lock due steps of active invitations (``FOR UPDATE SKIP
   LOCKED``, so replicas share the work; the invitation rows are locked too, so an answer being
   recorded right now either commits first and the step is not claimed, or waits for the claim),
   mark them ``sending`` with ``attempts + 1``, ``sending_since`` and ``claimed_by`` = this
   instance, and commit. The attempt is on record before anything leaves. Only ``planned`` steps
   are due: a step ``waiting`` for its invitation's contact is not read at all (the
   ``(status, due_at)`` index starts at ``planned``).
2. **Render** off the event loop (thread or process pool; the sealed contact is opened there).
3. **Re-check and hand over**, right before sending, in one statement: an answer or opt-out
   recorded since the claim skips the step; every other step is stamped ``handed_over_at`` (from
   now on it may reach the citizen, and it is finished with its key whatever happens next:
   ``domain.lifecycle.stops``).
4. **Send** concurrently (rate-limited per channel), each with its idempotency key
   ``<invitation>.<step>.<channel>``, which every channel forwards to its receiver. A channel
   that can take a whole batch at once (the dev sink: one thread hop for all its files) gets it.
5. **Record** the results in one transaction, set-based (one ``UPDATE ... FROM unnest(...)``
   for the batch): ``sent`` + ``invitation.sent`` (outbox, same transaction), transient failure -> ``planned`` again with exponential backoff (``failed``
   after ``max_attempts``), permanent failure -> ``failed`` with the redacted error (reported by
   ``GET /rounds/{id}/failures`` and the ``dispatch_messages_total`` metric), no phone -> skipped.

Batches are pipelined: while one batch is re-checked, sent and recorded, the next is claimed and
rendered (at most ``sender_pipeline_depth`` batches claimed ahead). Every batch still goes
through 1-5 in order; a batch claimed ahead and never sent is just a crash between 1 and 5.

A crash between 1 and 5 leaves steps ``sending``. Each sender instance holds a session-level
PostgreSQL advisory lock on its own key for its lifetime; reconciliation (at start-up and
periodically) takes over the ``sending`` steps of every owner whose lock is free (it is dead)
and sends them again **with the same key**: the dev sink, SF1601 (X-TransaktionsId and the MeMo
messageUUID are derived from the key) and the SMS gateway (Idempotency-Key) deduplicate, so the
citizen gets one message. A live but slow owner is never robbed. The stop rule decides as
everywhere (``domain.lifecycle.stops``): a taken-over step never handed over, of a citizen who
answered meanwhile, is skipped (it never left); one handed over is resent with its key even so
(it may have been delivered: the citizen may have answered from that very letter) and ends
``sent``.

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
from collections import Counter as Tally
from collections.abc import Callable
from concurrent.futures import Executor
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from prometheus_client import Counter
from sqlalchemy.dialects import postgresql

from services.dispatch.channels.base import Channel, OutgoingMessage, SendResult, SendStatus
from services.dispatch.compose import RenderConfig, RenderJob, RenderOutcome, render_jobs
from services.dispatch.config import DispatchSettings
from services.dispatch.domain.schedule import (
    WINDOWED_CHANNELS,
    Schedule,
    answer_deadline,
    fieldwork_over,
    open_keys,
    retry_time,
    round_key,
)
from services.dispatch.domain.lifecycle import StepStatus, goes_out, stop_reason, stops
from services.dispatch.domain.plan import PAPER_CHANNELS
from services.dispatch.models import DispatchStep, Invitation, RoundDefinitionRow
from services.dispatch.paper import offered_for, questionnaire_for
from services.dispatch.service import cancel_unsent, defer_to_window, schedules
from services.dispatch.stages import StageTimes
from shared.answer_id import answer_id_for
from shared.events import InvitationSent, RoundDefined
from shared.infra import exit_with_parent
from shared.observability import log_fields
from shared.runtime import ServiceRuntime

logger = logging.getLogger(__name__)

MESSAGES = Counter("dispatch_messages_total", "Dispatch send outcomes", ["channel", "outcome"])
RENDER_CHUNK = 100  # jobs per executor call: amortises the process pool's pickling
CHANNELS = ("letter", "sms", *PAPER_CHANNELS)
ROUND_KEY_SEPARATOR = round_key("", "")

_STEPS = DispatchStep.__table__
_INVITATIONS = Invitation.__table__
_CLAIMED_COLUMNS = (
    _STEPS.c.invitation_id, _STEPS.c.step, _STEPS.c.channel, _STEPS.c.attempts, _STEPS.c.due_at,
    _INVITATIONS.c.round_id, _INVITATIONS.c.kommunekode, _INVITATIONS.c.pseudonym, _INVITATIONS.c.token_nonce,
    _INVITATIONS.c.contact, _INVITATIONS.c.maalgruppe, _INVITATIONS.c.stratum, _INVITATIONS.c.arm,
    _INVITATIONS.c.created_at, _INVITATIONS.c.expires_at, _INVITATIONS.c.answer_seq, _INVITATIONS.c.followup_arm,
)


def _claim_statement(batch_size: int) -> sa.Update:
    """Claim up to `batch_size` due steps in one statement: lock them and their invitations
    (SKIP LOCKED), mark them ``sending`` with the attempt counted, return what composing needs.

    ``domain.schedule.sendable`` split in two: the step's due time (window included) is stored,
    so ``due_at <= now`` keeps the index walk; whether its round may send on its channel now
    (phase, end of fieldwork, window) is decided in Python over the rounds' definitions and
    arrives as ``open``, the keys ``round_key(round, channel)`` of every pair that may."""
    due = (
        sa.select(_STEPS.c.invitation_id, _STEPS.c.step, _STEPS.c.channel)
        .join(_INVITATIONS, _INVITATIONS.c.id == _STEPS.c.invitation_id)
        .where(_STEPS.c.status == StepStatus.PLANNED, _STEPS.c.due_at <= sa.bindparam("now"),
               goes_out(_INVITATIONS.c.status, _STEPS.c.handed_over_at),
               # The rounds that may send on the step's channel now (domain.schedule.open_keys).
               (_INVITATIONS.c.round_id + ROUND_KEY_SEPARATOR + _STEPS.c.channel)
               == sa.func.any(sa.bindparam("open", type_=postgresql.ARRAY(sa.Text))))
        .order_by(_STEPS.c.due_at)
        .limit(batch_size)
        .with_for_update(skip_locked=True)  # FOR UPDATE of the step and the invitation rows
        .cte("due")
        .prefix_with("MATERIALIZED")  # evaluated once, before the update
    )
    return (
        _STEPS.update()
        .where(
            _STEPS.c.invitation_id == due.c.invitation_id,
            _STEPS.c.step == due.c.step,
            _STEPS.c.channel == due.c.channel,
            _INVITATIONS.c.id == _STEPS.c.invitation_id,
        )
        .values(status=StepStatus.SENDING, attempts=_STEPS.c.attempts + 1, sending_since=sa.bindparam("now"),
                claimed_by=sa.bindparam("owner"))
        .returning(*_CLAIMED_COLUMNS)
    )


# The results of a batch in one statement: parallel arrays, one element per step. Only rows still
# ``sending`` under our claim change (a reconciler that took them over wins).
_RECORD = sa.text(
    f"""
    UPDATE {_STEPS.fullname} AS s
    SET status = r.status, due_at = r.due_at, sent_at = r.sent_at, provider_reference = r.provider_reference,
        last_error = r.last_error, skip_reason = r.skip_reason, claimed_by = NULL, sending_since = NULL
    FROM unnest(CAST(:invitation_id AS uuid[]), CAST(:step AS text[]), CAST(:channel AS text[]),
                CAST(:status AS text[]), CAST(:due_at AS timestamptz[]), CAST(:sent_at AS timestamptz[]),
                CAST(:provider_reference AS text[]), CAST(:last_error AS text[]), CAST(:skip_reason AS text[]))
         AS r(invitation_id, step, channel, status, due_at, sent_at, provider_reference, last_error, skip_reason)
    WHERE s.invitation_id = r.invitation_id AND s.step = r.step AND s.channel = r.channel
      AND s.status = '{StepStatus.SENDING}' AND s.claimed_by = :owner
    """
)
_RECORD_FIELDS = ("invitation_id", "step", "channel", "status", "due_at", "sent_at", "provider_reference",
                  "last_error", "skip_reason")

# The re-check before a batch goes to its channel, and the hand-over, in one statement: the steps
# still ``sending`` under our claim whose stop rule lets them go (domain.lifecycle.goes_out) are
# stamped handed over (the first time only) and returned; the others are stopped or not ours.
_HAND_OVER = sa.text(
    f"""
    UPDATE {_STEPS.fullname} AS s
    SET handed_over_at = COALESCE(s.handed_over_at, :now)
    FROM {_INVITATIONS.fullname} AS i,
         unnest(CAST(:invitation_id AS uuid[]), CAST(:step AS text[]), CAST(:channel AS text[])) AS b(invitation_id, step, channel)
    WHERE s.invitation_id = b.invitation_id AND s.step = b.step AND s.channel = b.channel AND i.id = s.invitation_id
      AND s.status = '{StepStatus.SENDING}' AND s.claimed_by = :owner
      AND ({goes_out(_INVITATIONS.alias("i").c.status, _STEPS.alias("s").c.handed_over_at).compile(
          dialect=postgresql.dialect(), compile_kwargs={"literal_binds": True})})
    RETURNING s.invitation_id, s.step, s.channel
    """
)


class Claimed:
    """A step claimed for sending, with what is needed to compose it (no ORM objects)."""

    _COLUMNS = ("invitation_id", "step", "channel", "attempts", "due_at", "round_id", "kommunekode", "pseudonym",
                "token_nonce", "contact", "maalgruppe", "stratum", "arm", "created_at", "expires_at", "answer_seq",
                "followup_arm")
    # Read after the claim: a paper step's questionnaire for print; whether a reminder letter's
    # step also sends a paper questionnaire; the languages a letter lists.
    __slots__ = (*_COLUMNS, "printed", "paper_with_it", "languages")

    def __init__(self, row) -> None:
        for name, value in zip(self._COLUMNS, row, strict=True):
            setattr(self, name, value)
        self.printed, self.paper_with_it, self.languages = None, False, None

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
        self._claim = _claim_statement(settings.sender_batch_size)
        self._render_config: RenderConfig | None = None
        self.stages = StageTimes()  # wall time per stage, for the bench and the curious
        # The rounds' schedules as of the last claim, parsed once per revision.
        self.schedules: dict[str, Schedule] = {}
        self._revisions: dict[str, int] = {}
        self._last_sweep = float("-inf")

    @property
    def render_config(self) -> RenderConfig:
        if self._render_config is None:
            self._render_config = RenderConfig.from_settings(self.settings)
        return self._render_config

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
                await self._pipeline(runtime)
            finally:
                # Session locks survive a connection's return to the pool: release it explicitly,
                # or drop the connection if that fails.
                try:
                    await asyncio.shield(lock_conn.execute(sa.select(sa.func.pg_advisory_unlock(self.instance_key))))
                    await lock_conn.commit()
                except BaseException:
                    await lock_conn.invalidate()
                    raise

    async def _pipeline(self, runtime: ServiceRuntime) -> None:
        """Claim and render ahead (up to `sender_pipeline_depth` batches) while earlier batches
        are re-checked, sent and recorded, in claim order."""
        depth = max(0, self.settings.sender_pipeline_depth)
        if depth == 0:
            last_reconcile = time.monotonic()
            while True:
                handled = await self.send_batch(runtime)
                if time.monotonic() - last_reconcile > self.settings.reconcile_interval_seconds:
                    await self.reconcile(runtime)
                    last_reconcile = time.monotonic()
                if handled < self.settings.sender_batch_size:
                    await asyncio.sleep(self.settings.sender_interval_seconds)

        ready: asyncio.Queue[asyncio.Task] = asyncio.Queue()
        slots = asyncio.Semaphore(depth + 1)  # batches claimed and not yet recorded

        async def claim_and_render() -> None:
            last_reconcile = time.monotonic()
            while True:
                await slots.acquire()
                claimed = await self.claim(runtime)
                if claimed:
                    # Rendering runs as its own task: the next claim need not wait for it.
                    await ready.put(asyncio.ensure_future(self._rendered(claimed)))
                else:
                    slots.release()
                if time.monotonic() - last_reconcile > self.settings.reconcile_interval_seconds:
                    await self.reconcile(runtime)
                    last_reconcile = time.monotonic()
                if len(claimed) < self.settings.sender_batch_size:
                    await asyncio.sleep(self.settings.sender_interval_seconds)

        async def send_and_record() -> None:
            while True:
                claimed, outcomes = await (await ready.get())
                await self.finish(runtime, claimed, outcomes)
                slots.release()

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(claim_and_render())
                group.create_task(send_and_record())
        finally:
            while not ready.empty():  # claimed ahead, never sent: left to reconciliation
                ready.get_nowait().cancel()

    async def _rendered(self, claimed: list[Claimed]) -> tuple[list[Claimed], dict[str, RenderOutcome]]:
        return claimed, await self.render(claimed)

    async def reconcile(self, runtime: ServiceRuntime) -> int:
        """Requeue the ``sending`` steps of dead sender instances (same key, so no double send)."""
        async with runtime.engine.connect() as conn:
            owners = (
                await conn.execute(
                    sa.select(DispatchStep.claimed_by).distinct().where(DispatchStep.status == StepStatus.SENDING)
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
                        .where(DispatchStep.status == StepStatus.SENDING, owner_filter, Invitation.id == DispatchStep.invitation_id)
                        .values(
                            # The stop rule: answered or opted out meanwhile and never handed over, the
                            # step did not leave and is skipped; handed over, it is resent with its key.
                            status=sa.case((stops(Invitation.status, DispatchStep.handed_over_at), StepStatus.SKIPPED.value),
                                           else_=StepStatus.PLANNED.value),
                            skip_reason=sa.case((stops(Invitation.status, DispatchStep.handed_over_at), Invitation.status),
                                                else_=None),
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
                # Requeued steps of a round whose fieldwork is over are cancelled by the next sweep.
                await conn.execute(sa.update(RoundDefinitionRow).values(steps_cancelled_at=None))
                await conn.commit()
                self._last_sweep = float("-inf")
                logger.warning("requeued steps of a dead sender; resending with the same keys", extra=log_fields(steps=requeued))
            return requeued

    # --- one batch -------------------------------------------------------------------------------

    async def send_batch(self, runtime: ServiceRuntime) -> int:
        """One batch through every stage, without pipelining."""
        claimed = await self.claim(runtime)
        if not claimed:
            return 0
        outcomes = await self.render(claimed)
        await self.finish(runtime, claimed, outcomes)
        return len(claimed)

    async def finish(self, runtime: ServiceRuntime, claimed: list[Claimed], outcomes: dict[str, RenderOutcome]) -> None:
        """Re-check, send, record: the part of a batch that must happen in this order, late."""
        with self.stages.measure("recheck", len(claimed)):
            stopped = await self.hand_over(runtime, claimed)
        with self.stages.measure("send", len(claimed)):
            results = await self.deliver_all(claimed, outcomes, stopped)
        with self.stages.measure("record", len(claimed)):
            await self.record(runtime, claimed, results)

    async def refresh_schedules(self, runtime: ServiceRuntime) -> dict[str, datetime | None]:
        """Read every round's definition (a small table), parsing only new revisions; returns
        when each round's unsent steps were cancelled."""
        async with runtime.sessionmaker() as session:
            rows = await schedules(session)
        cancelled = {}
        for round_id, (revision, definition, steps_cancelled_at) in rows.items():
            if self._revisions.get(round_id) != revision:
                self.schedules[round_id] = Schedule.from_definition(RoundDefined.model_validate(definition))
                self._revisions[round_id] = revision
                self._last_sweep = float("-inf")  # a round changed: sweep at once
            cancelled[round_id] = steps_cancelled_at
        return cancelled

    async def sweep(self, runtime: ServiceRuntime, cancelled: dict[str, datetime | None], now: datetime) -> None:
        """Cancel the unsent steps of rounds whose fieldwork is over (once per round, again
        after a reconciliation may have requeued some), and move steps that came due while
        their round's window is closed to its next opening."""
        for round_id, schedule in self.schedules.items():
            if fieldwork_over(schedule, now):
                if cancelled.get(round_id) is None:
                    async with runtime.uow() as uow:
                        n = await cancel_unsent(uow.session, round_id)
                        await uow.commit()
                    if n:
                        logger.info("fieldwork over: unsent steps cancelled", extra=log_fields(round_id=round_id, steps=n))
            elif schedule.times_steps and not schedule.window.is_open(now):
                async with runtime.uow() as uow:
                    await defer_to_window(uow.session, round_id, schedule.window.next_opening(now), now,
                                          WINDOWED_CHANNELS)
                    await uow.commit()

    async def claim(self, runtime: ServiceRuntime) -> list[Claimed]:
        now = self.clock()
        cancelled = await self.refresh_schedules(runtime)
        if time.monotonic() - self._last_sweep > self.settings.schedule_sweep_seconds:
            await self.sweep(runtime, cancelled, now)
            self._last_sweep = time.monotonic()
        open_now = open_keys(self.schedules, CHANNELS, now)
        if not open_now:
            return []
        with self.stages.measure("claim") as m:
            async with runtime.uow() as uow:
                # The due steps must come from the (status, due_at) index in due order, stopping
                # after a batch. While the tables grow fast (a national round being planned) the
                # statistics lag, and the planner would join and sort every due step, per batch.
                await uow.session.execute(sa.text("SET LOCAL enable_sort = off"))
                rows = (
                    await uow.session.execute(self._claim, {"now": now, "owner": self.instance_key, "open": open_now})
                ).all()
                if not rows:
                    return []
                await uow.commit()  # the attempt is on record before anything is sent
            m.items = len(rows)
        claimed = sorted((Claimed(row) for row in rows), key=lambda c: c.due_at)
        await self.paper_questionnaires(runtime, claimed)
        return claimed

    async def paper_questionnaires(self, runtime: ServiceRuntime, claimed: list[Claimed]) -> None:
        """Give the claimed paper steps their round's questionnaire for print and the letters the
        languages their round offers (both from questionnaire.offered), and mark the claimed
        reminder letters whose step also sends a paper questionnaire (an exempt citizen's printed
        letter then stays home: compose.py). Two small reads, only for batches with letters."""
        paper = [c for c in claimed if c.channel in PAPER_CHANNELS]
        letters = [c for c in claimed if c.channel == "letter"]
        reminder_letters = [c for c in letters if c.step != "invitation"]
        if not (paper or letters):
            return
        async with runtime.sessionmaker() as session:
            offered = await offered_for(session, {c.round_id for c in (*paper, *letters)})
            for c in paper:
                c.printed = questionnaire_for(offered.get(c.round_id), c.kommunekode)
            for c in letters:
                questionnaire = questionnaire_for(offered.get(c.round_id), c.kommunekode)
                c.languages = tuple(questionnaire.get("offered_languages") or ()) if questionnaire else None
            if reminder_letters:
                with_paper = set((await session.execute(
                    sa.select(DispatchStep.invitation_id, DispatchStep.step)
                    .where(DispatchStep.invitation_id.in_({c.invitation_id for c in reminder_letters}),
                           DispatchStep.channel.in_(PAPER_CHANNELS))
                )).all())
                for c in reminder_letters:
                    c.paper_with_it = (c.invitation_id, c.step) in with_paper

    def job_for(self, c: Claimed, letter_date) -> RenderJob:
        return RenderJob(key=c.key, step=c.step, channel=c.channel, round_id=c.round_id, kommunekode=c.kommunekode,
                         pseudonym=c.pseudonym, token_nonce=c.token_nonce, contact=c.contact, created_at=c.created_at,
                         expires_at=c.expires_at, letter_date=letter_date,
                         deadline=answer_deadline(self.schedules.get(c.round_id), self.settings.response_deadline_days),
                         answer_id=answer_id_for(c.answer_seq),
                         printed=c.printed, paper_questionnaire_with_it=c.paper_with_it, languages=c.languages or None)

    async def render(self, claimed: list[Claimed]) -> dict[str, RenderOutcome]:
        with self.stages.measure("render", len(claimed)):
            letter_date = self.clock().date()
            jobs = [self.job_for(c, letter_date) for c in claimed]
            chunks = [jobs[i : i + RENDER_CHUNK] for i in range(0, len(jobs), RENDER_CHUNK)]
            config = self.render_config
            loop = asyncio.get_running_loop()
            if self.executor is not None:
                rendered = await asyncio.gather(
                    *(loop.run_in_executor(self.executor, render_jobs, config, chunk) for chunk in chunks))
            else:
                rendered = [await asyncio.to_thread(render_jobs, config, chunk) for chunk in chunks]
            return {o.key: o for chunk in rendered for o in chunk}

    async def hand_over(self, runtime: ServiceRuntime, claimed: list[Claimed]) -> dict[str, str]:
        """The stop rule's re-check right before sending, and the hand-over (``_HAND_OVER``):
        returns the keys of the claimed steps that must not go, with why (the invitation's stop
        reason; ``taken_over`` for a step no longer ours, whose record is then a no-op)."""
        async with runtime.uow() as uow:
            going = {
                f"{invitation_id}.{step}.{channel}"
                for invitation_id, step, channel in await uow.session.execute(_HAND_OVER, {
                    "invitation_id": [c.invitation_id for c in claimed], "step": [c.step for c in claimed],
                    "channel": [c.channel for c in claimed], "now": self.clock(), "owner": self.instance_key})
            }
            await uow.commit()
            held = [c for c in claimed if c.key not in going]
            if not held:
                return {}
            statuses = dict((await uow.session.execute(
                sa.select(Invitation.id, Invitation.status).where(Invitation.id.in_({c.invitation_id for c in held}))
            )).all())
        return {c.key: stop_reason(statuses.get(c.invitation_id, "")) or "taken_over" for c in held}

    async def deliver_all(self, claimed: list[Claimed], outcomes: dict[str, RenderOutcome],
                          stopped: dict[str, str]) -> list[tuple[str, SendResult | None, str | None]]:
        """(outcome, result, skip reason) per claimed step, in order."""
        results: list = [None] * len(claimed)
        batches: dict[str, list[tuple[int, OutgoingMessage]]] = {}
        singles = []
        for i, c in enumerate(claimed):
            outcome = outcomes[c.key]
            if c.key in stopped:
                results[i] = (StepStatus.SKIPPED, None, stopped[c.key])
            elif outcome.skip_reason:
                results[i] = (StepStatus.SKIPPED, None, outcome.skip_reason)
            elif outcome.error:
                results[i] = (StepStatus.FAILED, SendResult.permanent(outcome.error), None)
            elif outcome.retry:
                results[i] = (SendStatus.TRANSIENT_FAILURE.value, SendResult.transient(outcome.retry), None)
            elif getattr(self.channels[c.channel], "batched", False):
                batches.setdefault(c.channel, []).append((i, outcome.message))
            else:
                singles.append((i, c, outcome.message))

        async def one(i: int, c: Claimed, message: OutgoingMessage) -> None:
            async with self._semaphore:
                try:
                    result = await self.channels[c.channel].send(message)
                except Exception as exc:  # noqa: BLE001 - channels classify, but a bug must not lose the batch
                    result = SendResult.transient(f"channel raised {type(exc).__name__}")
            results[i] = (result.status.value, result, None)

        async def many(channel: Channel, items: list[tuple[int, OutgoingMessage]]) -> None:
            try:
                sent = await channel.send_many([message for _, message in items])
            except Exception as exc:  # noqa: BLE001
                sent = [SendResult.transient(f"channel raised {type(exc).__name__}")] * len(items)
            for (i, _), result in zip(items, sent, strict=True):
                results[i] = (result.status.value, result, None)

        await asyncio.gather(*(one(*single) for single in singles),
                             *(many(self.channels[name], items) for name, items in batches.items()))
        return results

    async def deliver(self, c: Claimed, outcome: RenderOutcome, stopped: dict[str, str]) -> tuple[str, SendResult | None, str | None]:
        """One step (the batch path is `deliver_all`). Returns (outcome, result, skip reason)."""
        return (await self.deliver_all([c], {c.key: outcome}, stopped))[0]

    async def record(self, runtime: ServiceRuntime, claimed: list[Claimed], results) -> None:
        now = self.clock()
        s = self.settings
        columns: dict[str, list] = {name: [] for name in _RECORD_FIELDS}
        tally: Tally = Tally()
        async with runtime.uow() as uow:
            for c, (outcome, result, skip_reason) in zip(claimed, results, strict=True):
                due_at, sent_at = c.due_at, None
                if outcome == StepStatus.SKIPPED:
                    status = StepStatus.SKIPPED
                elif result.status is SendStatus.SENT:
                    status, sent_at = StepStatus.SENT, now
                    uow.publish(
                        InvitationSent(
                            round_id=c.round_id, kommunekode=c.kommunekode, pseudonym=c.pseudonym, step=c.step,
                            channel=self.event_channel(c, outcome), maalgruppe=c.maalgruppe, stratum=c.stratum,
                            arm=c.arm, sent_at=now, followup_arm=c.followup_arm,
                        )
                    )
                elif result.status is SendStatus.TRANSIENT_FAILURE and c.attempts < s.max_attempts:
                    schedule = self.schedules.get(c.round_id)
                    backoff = min(s.retry_backoff_seconds * 2 ** (c.attempts - 1), 3600)
                    status, due_at = StepStatus.PLANNED, retry_time(schedule, c.channel, now + timedelta(seconds=backoff))
                    if fieldwork_over(schedule, due_at):
                        status = StepStatus.CANCELLED  # its next try would come after the end of fieldwork
                else:
                    status = StepStatus.FAILED
                    logger.warning("message failed permanently",
                                   extra=log_fields(key=c.key, attempts=c.attempts, error=result.error))
                tally[(c.channel, status)] += 1
                for name, value in (("invitation_id", c.invitation_id), ("step", c.step), ("channel", c.channel),
                                    ("status", status), ("due_at", due_at), ("sent_at", sent_at),
                                    ("provider_reference", result.provider_reference if result else None),
                                    ("last_error", result.error if result else None), ("skip_reason", skip_reason)):
                    columns[name].append(value)
            await uow.session.execute(_RECORD, {**columns, "owner": self.instance_key})
            await self.before_result_commit(claimed)
            await uow.commit()
        for (channel, status), n in tally.items():
            MESSAGES.labels(channel, status).inc(n)
        for c, (outcome, _result, _skip) in zip(claimed, results, strict=True):
            if outcome == SendStatus.SENT:
                self.stages.count(f"sent.{c.step}.{c.channel}")

    def event_channel(self, c: Claimed, outcome) -> str:
        if c.channel in PAPER_CHANNELS:
            return "physical_post"
        return "sms" if c.channel == "sms" else "digital_post"

    async def before_result_commit(self, claimed: list[Claimed]) -> None:
        """Hook for crash tests."""


def make_executor(settings: DispatchSettings) -> Executor | None:
    if settings.render_processes <= 0:
        return None
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn, not fork: forking a process with a running event loop and threads is unsafe.
    return ProcessPoolExecutor(settings.render_processes, mp_context=multiprocessing.get_context("spawn"), initializer=exit_with_parent)


__all__ = ["Sender", "make_executor"]
