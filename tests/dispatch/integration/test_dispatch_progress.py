"""dispatch.progress (the round overview's message counts) against real PostgreSQL: the snapshot
counts what GET /rounds/{id}/status counts, goes into the outbox only when the counts (or the
sending state) changed since the one published last, and carries no pseudonym."""

from __future__ import annotations

import uuid

import sqlalchemy as sa

from dispatch_harness import answered, dispatch_runtime, handle, make_settings, round_defined, sample
from services.dispatch import service
from services.dispatch.handlers import make_handlers
from services.dispatch.models import BUS
from services.dispatch.progress import ProgressPublisher
from shared.events import Envelope

KOMMUNE = "492"


async def outbox_progress(runtime, round_id: str) -> list[dict]:
    async with runtime.sessionmaker() as session:
        rows = (await session.execute(
            sa.select(BUS.outbox.c.envelope)
            .where(BUS.outbox.c.topic == "dispatch.progress", BUS.outbox.c.key == round_id)
            .order_by(BUS.outbox.c.id)
        )).scalars().all()
    return [Envelope.model_validate(row).data for row in rows]


async def test_progress_is_published_when_the_counts_change_and_equals_the_status(service_env):
    round_id = f"prog-{uuid.uuid4().hex[:8]}"
    # The relay stays idle (its poll far off) so the test reads what the publisher wrote.
    async with dispatch_runtime(service_env, outbox_poll_interval_seconds=3600) as runtime:
        runtime.relay.nudge = lambda: None
        handlers = make_handlers(make_settings(service_env))
        publisher = ProgressPublisher(interval=3600)
        chunk = sample(service_env, round_id, KOMMUNE, 4)
        await handle(runtime, handlers, round_defined(round_id, 1, phase="sample_drawn", invitation_at=None))
        for event in chunk.events:
            await handle(runtime, handlers, event)

        assert await publisher.publish_changes(runtime) >= 1
        first = (await outbox_progress(runtime, round_id))[-1]
        async with runtime.sessionmaker() as session:
            status = await service.step_counts(session, round_id)
        assert [(s["kommunekode"], s["step"], s["channel"], s["status"], s["count"]) for s in first["steps"]] == status
        assert first["sending"] == "waiting_for_schedule"
        assert "pseudonym" not in str(first) and chunk.persons[0].pseudonym not in str(first)

        # Nothing changed: nothing published.
        before = len(await outbox_progress(runtime, round_id))
        await publisher.publish_changes(runtime)
        assert len(await outbox_progress(runtime, round_id)) == before

        # An answer skips the citizen's reminders: a new snapshot with the new counts.
        await handle(runtime, handlers, answered(chunk, chunk.persons[0].pseudonym))
        await publisher.publish_changes(runtime)
        snapshots = await outbox_progress(runtime, round_id)
        assert len(snapshots) == before + 1
        skipped = {(s["step"], s["status"]): s["count"] for s in snapshots[-1]["steps"]}
        assert skipped[("reminder_1", "skipped")] == 1 and snapshots[-1]["as_of"] > first["as_of"]
