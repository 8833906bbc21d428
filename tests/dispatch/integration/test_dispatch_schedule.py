"""Scheduled sending against real PostgreSQL and a real broker: the draw plans, the round's
definition (round.defined) decides when. Nothing is claimed before the round is scheduled and its
dates have come; a higher revision moves every unsent step, a replayed one moves nothing; the
sending window holds messages until it opens; the end of fieldwork cancels what is unsent and
counts it. Then the same through the running service and the operator's status."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, time, timedelta

import pytest
import sqlalchemy as sa

from dispatch_harness import (
    answered,
    dispatch_runtime,
    handle,
    make_settings,
    produce,
    round_defined,
    sample,
    step_statuses,
    wait_for,
)
from services.dispatch import service
from services.dispatch.domain.schedule import LOCAL, Schedule, Window, due_time
from services.dispatch.handlers import make_handlers
from services.dispatch.main import create_app
from services.dispatch.models import DispatchStep, Invitation
from services.dispatch.sender import Sender
from shared.events import SendingWindow
from shared.testing.fixtures import bearer, running_app

KOMMUNE = "492"
OFFICE_HOURS = SendingWindow(start=time(8), end=time(20))


@pytest.fixture
async def runtime(service_env):
    async with dispatch_runtime(service_env) as runtime:
        yield runtime


@pytest.fixture
def handlers(service_env):
    return make_handlers(make_settings(service_env))


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """A day in September 2030, Danish time, in UTC."""
    return datetime(2030, 9, day, hour, minute, tzinfo=LOCAL).astimezone(UTC)


async def due_by_step(runtime, round_id: str) -> dict[str, set]:
    async with runtime.sessionmaker() as session:
        rows = await session.execute(
            sa.select(DispatchStep.step, DispatchStep.due_at).join(Invitation, Invitation.id == DispatchStep.invitation_id)
            .where(Invitation.round_id == round_id))
        out: dict[str, set] = {}
        for step, due in rows.all():
            out.setdefault(step, set()).add(due)
        return out


async def shown(runtime, round_id: str) -> dict[tuple[str, str], int]:
    async with runtime.sessionmaker() as session:
        rows = await service.step_counts(session, round_id)
    counts: dict[tuple[str, str], int] = {}
    for _k, step, _c, status, n in rows:
        counts[(step, status)] = counts.get((step, status), 0) + n
    return counts


async def test_the_draw_plans_and_the_definition_schedules_moves_and_ends(service_env, runtime, handlers):
    round_id = f"sched-{uuid.uuid4().hex[:8]}"
    chunk = sample(service_env, round_id, KOMMUNE, 5)
    clock = Clock(local(1, 9))
    sender = Sender(make_settings(service_env, sender_batch_size=1000, schedule_sweep_seconds=0), channels={},
                    clock=clock)
    for event in chunk.events:
        await handle(runtime, handlers, event)

    # No definition: planned, never claimed, shown as waiting for the schedule.
    assert await sender.claim(runtime) == []
    assert await shown(runtime, round_id) == {(s, "waiting_for_schedule"): 5 for s in ("invitation", "reminder_1", "reminder_2")}

    # Defined but not yet scheduled by the operator (phase sample_drawn): still nothing.
    invitation = local(3, 10)
    reminders = [local(10, 10), local(17, 10)]
    await handle(runtime, handlers, round_defined(round_id, 1, phase="sample_drawn", invitation_at=invitation,
                                                  reminders_at=reminders, window=OFFICE_HOURS))
    assert (await due_by_step(runtime, round_id))["invitation"] == {None}
    clock.at = local(3, 11)
    assert await sender.claim(runtime) == []

    # Scheduled: the steps get the round's dates; nothing before the invitation date.
    await handle(runtime, handlers, round_defined(round_id, 2, invitation_at=invitation, reminders_at=reminders,
                                                  window=OFFICE_HOURS))
    assert await due_by_step(runtime, round_id) == {"invitation": {invitation}, "reminder_1": {reminders[0]},
                                                     "reminder_2": {reminders[1]}}
    clock.at = local(2, 12)
    assert await sender.claim(runtime) == []

    # Rescheduled before the date: every unsent step moves; a replayed revision moves nothing.
    later = local(4, 7)  # before the window opens: due at 08:00
    await handle(runtime, handlers, round_defined(round_id, 3, invitation_at=later, window=OFFICE_HOURS))
    await handle(runtime, handlers, round_defined(round_id, 2, invitation_at=invitation, reminders_at=reminders,
                                                  window=OFFICE_HOURS))
    dues = await due_by_step(runtime, round_id)
    assert dues["invitation"] == {local(4, 8)}
    assert dues["reminder_1"] == {due_time(Schedule("in_fieldwork", later, window=Window(time(8), time(20))),
                                           "reminder_1", "letter", 7.0)}
    assert dues["reminder_1"] == {local(11, 8)}  # 7 days after 07:00, then the window's opening

    clock.at = local(4, 7, 59)
    assert await sender.claim(runtime) == []
    clock.at = local(4, 8)
    claimed = await sender.claim(runtime)
    assert {c.step for c in claimed} == {"invitation"} and len(claimed) == 5
    await sender.record(runtime, claimed, [("skipped", None, "test")] * len(claimed))

    # A reminder due at 08:00 that is still unsent when the window closes waits for the next
    # opening (the sweep moves it, so the claim reads nothing meanwhile).
    clock.at = local(11, 21)
    assert await sender.claim(runtime) == []
    assert (await due_by_step(runtime, round_id))["reminder_1"] == {local(12, 8)}

    # The end of fieldwork (its date passing, no new revision needed): nothing more is claimed
    # and every unsent step is cancelled and counted.
    await handle(runtime, handlers, round_defined(round_id, 4, phase="in_fieldwork", invitation_at=later,
                                                  fieldwork_ends_at=local(12, 9), window=OFFICE_HOURS))
    clock.at = local(12, 10)
    assert await sender.claim(runtime) == []
    assert await shown(runtime, round_id) == {("invitation", "skipped"): 5, ("reminder_1", "cancelled"): 5,
                                             ("reminder_2", "cancelled"): 5}


async def test_a_sample_after_the_end_of_fieldwork_plans_only_cancelled_steps(service_env, runtime, handlers):
    round_id = f"late-{uuid.uuid4().hex[:8]}"
    await handle(runtime, handlers, round_defined(round_id, 1, phase="fieldwork_ended"))
    chunk = sample(service_env, round_id, KOMMUNE, 3, missing={2})
    await handle(runtime, handlers, chunk.sample)
    await handle(runtime, handlers, chunk.release)
    counts = await shown(runtime, round_id)
    assert counts == {(s, "cancelled"): 3 for s in ("invitation", "reminder_1", "reminder_2")}


async def test_over_the_bus_nothing_before_the_date_all_at_it_and_the_end_cancels(service_env, dev_issuer):
    """The running service: an invitation date a few seconds ahead; nothing goes before it,
    every invitation at it, the first reminder at its date skipping the citizen who answered,
    and ending fieldwork early cancels the second reminder, counted in the operator's status."""
    settings = make_settings(service_env, schedule_sweep_seconds=0.2)
    admin = bearer(dev_issuer.mint("kl-operator", ["rounds:admin", "kommuner:all"]))
    chunk = sample(service_env, "bus-sched", KOMMUNE, 6)
    app = create_app(settings)
    async with running_app(app) as client:
        await produce(service_env, *chunk.events)

        async def planned_waiting():
            status = (await client.get("/rounds/bus-sched/status", headers=admin)).json()
            waiting = {(s["step"], s["status"]): s["count"] for s in status["steps"]}
            return waiting.get(("invitation", "waiting_for_schedule")) == 6 and status
        status = await wait_for(planned_waiting, 60, "the draw planned, waiting for a schedule")
        assert status["sending"] == "waiting_for_definition" and status["schedule"] is None

        invitation_at = datetime.now(UTC) + timedelta(seconds=4)
        reminder_at = invitation_at + timedelta(seconds=5)
        definition = round_defined("bus-sched", 1, invitation_at=invitation_at,
                                   reminders_at=[reminder_at, invitation_at + timedelta(days=7)])
        await produce(service_env, definition)

        async def scheduled():
            status = (await client.get("/rounds/bus-sched/status", headers=admin)).json()
            return status["sending"] == "scheduled" and status
        status = await wait_for(scheduled, 30, "the round scheduled")
        assert status["schedule"]["revision"] == 1 and status["schedule"]["phase"] == "fieldwork_scheduled"
        while datetime.now(UTC) < invitation_at - timedelta(seconds=0.5):
            assert (await step_statuses(app, "bus-sched"))[("invitation", "letter", "sent")] == 0
            await asyncio.sleep(0.2)

        async def invited():
            counts = await step_statuses(app, "bus-sched")
            return counts[("invitation", "letter", "sent")] == 6 and counts
        counts = await wait_for(invited, 30, "every invitation at its date")
        assert datetime.now(UTC) >= invitation_at
        assert counts[("reminder_1", "letter", "sent")] == 0
        await produce(service_env, answered(chunk, chunk.persons[0].pseudonym))

        async def reminded():
            counts = await step_statuses(app, "bus-sched")
            return counts[("reminder_1", "letter", "sent")] == 5 and counts
        counts = await wait_for(reminded, 30, "the first reminder at its date")
        assert counts[("reminder_1", "letter", "skipped")] == 1  # answered

        ended = round_defined("bus-sched", 2, phase="fieldwork_ended", invitation_at=invitation_at,
                              reminders_at=[reminder_at, invitation_at + timedelta(days=7)])
        await produce(service_env, ended)

        async def cancelled():
            status = (await client.get("/rounds/bus-sched/status", headers=admin)).json()
            counts = {(s["step"], s["status"]): s["count"] for s in status["steps"]}
            return status["sending"] == "ended" and counts.get(("reminder_2", "cancelled")) == 5 and counts
        counts = await wait_for(cancelled, 30, "the second reminder cancelled")
        assert counts[("reminder_2", "skipped")] == 1 and counts[("invitation", "sent")] == 6


async def test_links_live_from_the_invitation_date_to_at_least_the_end_of_fieldwork(service_env, runtime, handlers):
    settings = make_settings(service_env)
    invitation_at, ends_at = local(2, 8), local(30, 0)
    early = f"expiry-{uuid.uuid4().hex[:8]}"
    await handle(runtime, handlers, round_defined(early, 1, invitation_at=invitation_at, fieldwork_ends_at=ends_at))
    late_end = f"expiry-{uuid.uuid4().hex[:8]}"
    await handle(runtime, handlers, round_defined(late_end, 1, invitation_at=invitation_at,
                                                  fieldwork_ends_at=invitation_at + timedelta(days=60)))
    for round_id in (early, late_end):
        await handle(runtime, handlers, sample(service_env, round_id, KOMMUNE, 1).sample)
    async with runtime.sessionmaker() as session:
        expiry = dict((await session.execute(sa.select(Invitation.round_id, Invitation.expires_at)
                                             .where(Invitation.round_id.in_([early, late_end])))).all())
    assert expiry[early] == invitation_at + timedelta(days=settings.link_validity_days)
    assert expiry[late_end] == invitation_at + timedelta(days=60)
