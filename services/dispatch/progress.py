"""dispatch.progress: every round's messages per municipality, step, channel and status (what
``GET /rounds/{id}/status`` shows), published when they change, for analytics' round overview.

A worker looks every ``progress_interval_seconds``: it counts each defined round's steps (one
grouped query per round, the status endpoint's) and publishes the snapshot through the outbox
when it differs from the one it published last. The snapshot is whole (state transfer, never a
delta): a replayed or duplicated event changes nothing for a consumer that keeps the latest by
``as_of``. One replica publishes at a time (an advisory lock for the look), so two snapshots of
one round are never taken side by side. After a restart every round is published once again.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import sqlalchemy as sa

from services.dispatch.domain.schedule import Schedule, round_sending
from services.dispatch.models import RoundDefinitionRow
from services.dispatch.service import contact_counts, step_counts
from shared.bus import UnitOfWork
from shared.db import advisory_key
from shared.events import DispatchContactCount, DispatchProgress, DispatchStepCount, RoundDefined
from shared.runtime import ServiceRuntime

logger = logging.getLogger(__name__)

_LEADER = sa.text("SELECT pg_try_advisory_xact_lock(:key)")
LEADER_KEY = advisory_key("dispatch.progress")


async def round_progress(uow: UnitOfWork, round_id: str, definition: dict, now: datetime) -> DispatchProgress:
    """The round's snapshot, counted as the status endpoint counts it."""
    rows = await step_counts(uow.session, round_id)
    contacts = await contact_counts(uow.session, round_id)
    return DispatchProgress(
        round_id=round_id,
        sending=round_sending(Schedule.from_definition(RoundDefined.model_validate(definition)), now),
        steps=[DispatchStepCount(kommunekode=k, step=s, channel=c, status=st, count=n) for k, s, c, st, n in rows],
        contacts=[DispatchContactCount(**row) for row in contacts],
        as_of=now,
    )


def _fingerprint(progress: DispatchProgress) -> str:
    return progress.model_dump_json(exclude={"as_of"})


class ProgressPublisher:
    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.published: dict[str, str] = {}  # round -> fingerprint of the snapshot published last

    async def publish_changes(self, runtime: ServiceRuntime) -> int:
        """One look: publish every round whose counts changed; returns how many were published."""
        async with runtime.uow() as uow:
            if not await uow.session.scalar(_LEADER, {"key": LEADER_KEY}):
                return 0  # another replica looks now
            rounds = (
                await uow.session.execute(
                    sa.select(RoundDefinitionRow.round_id, RoundDefinitionRow.definition)
                    .where(RoundDefinitionRow.phase != "purged")
                    .order_by(RoundDefinitionRow.round_id)
                )
            ).all()
            now = datetime.now(UTC)
            changed = {}
            for round_id, definition in rounds:
                progress = await round_progress(uow, round_id, definition, now)
                fingerprint = _fingerprint(progress)
                if self.published.get(round_id) != fingerprint:
                    uow.publish(progress)
                    changed[round_id] = fingerprint
            await uow.commit()
        self.published.update(changed)
        return len(changed)

    async def run(self, runtime: ServiceRuntime) -> None:
        while True:
            await self.publish_changes(runtime)
            await asyncio.sleep(self.interval)
