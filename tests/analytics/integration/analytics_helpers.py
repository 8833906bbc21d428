"""What analytics' integration tests share: waiting for a round's release over HTTP."""

from __future__ import annotations

import asyncio

from shared.testing.fixtures import bearer


async def wait_for_release(client, round_id: str, token: str, answers: int) -> None:
    """Until the round's latest release counts ``answers`` answers (national response rate)."""
    async with asyncio.timeout(90):
        while True:
            r = await client.get(f"/rounds/{round_id}/response-rates", headers=bearer(token))
            if r.status_code == 200 and r.json()["rows"][0]["answers"] == answers:
                return
            await asyncio.sleep(0.2)
