"""The retention clock: requests the purge of every closed round whose period has run out."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from services.ingest.privacy import service


async def run_retention_clock(runtime) -> None:
    while True:
        async with runtime.uow() as uow:
            due = await service.due_rounds(uow, datetime.now(UTC))
        for round_id in due:
            async with runtime.uow() as uow:
                await service.request_purge(uow, round_id)
        await asyncio.sleep(runtime.settings.retention_check_interval_seconds)
