"""Dispatch's operator routes on their success path: the round's default plan set and read back,
and the permanently failed messages of a round listed with their redacted reason."""

from __future__ import annotations

import sys
from pathlib import Path

from services.dispatch.channels.base import Channel, OutgoingMessage, SendResult
from services.dispatch.main import create_app
from shared.testing.fixtures import bearer, running_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "dispatch" / "integration"))
from dispatch_harness import make_settings, produce, round_defined, sample, step_statuses, wait_for  # noqa: E402

KOMMUNE = "492"


class RefusingChannel(Channel):
    """A provider that refuses every recipient for good (as SF1601 does an unknown one)."""

    name = "letter"

    def __init__(self) -> None:
        self.keys: list[str] = []

    async def send(self, message: OutgoingMessage) -> SendResult:
        self.keys.append(message.idempotency_key)
        return SendResult.permanent("recipient refused (test provider)")


async def test_default_plan_and_permanent_failures(service_env, dev_issuer):
    admin = bearer(dev_issuer.mint("kl-operator", ["rounds:admin", "kommuner:all"]))
    refusing = RefusingChannel()
    app = create_app(make_settings(service_env, reminder_count=1), channels={"letter": refusing, "sms": refusing})
    async with running_app(app) as client:
        # Before any plan: the service's defaults, no municipality of its own.
        before = await client.get("/rounds/rf1/plan", headers=admin)
        assert before.status_code == 200, before.text
        assert before.json()["round_id"] == "rf1" and before.json()["municipalities"] == {}
        assert before.json()["default"]["reminder_count"] == 1

        put = await client.put("/rounds/rf1/plan", json={"reminder_count": 0}, headers=admin)
        assert put.status_code == 200, put.text
        assert put.json()["default"]["reminder_count"] == 0
        read = (await client.get("/rounds/rf1/plan", headers=admin)).json()
        assert read["default"]["reminder_count"] == 0 and read["municipalities"] == {}

        assert (await client.get("/rounds/rf1/failures", headers=admin)).json() == {"round_id": "rf1", "failed": []}

        chunk = sample(service_env, "rf1", KOMMUNE, 3)
        await produce(service_env, round_defined("rf1"), *chunk.events)

        async def all_failed():
            counts = await step_statuses(app, "rf1")
            return counts[("invitation", "letter", "failed")] == 3 and counts

        counts = await wait_for(all_failed, 60, "three refused invitations")
        # The default plan of no reminders held: only the invitation step exists.
        assert {step for step, _, _ in counts} == {"invitation"}

        failures = await client.get("/rounds/rf1/failures", headers=admin)
        assert failures.status_code == 200, failures.text
        body = failures.json()
        assert body["round_id"] == "rf1"
        assert sorted(f["pseudonym"] for f in body["failed"]) == sorted(p.pseudonym for p in chunk.persons)
        for failed in body["failed"]:
            assert failed["kommunekode"] == KOMMUNE and failed["step"] == "invitation" and failed["channel"] == "letter"
            assert failed["attempts"] == 1
            assert failed["last_error"] == "recipient refused (test provider)"
        # Another round's failures are not in it.
        assert (await client.get("/rounds/other/failures", headers=admin)).json()["failed"] == []
    assert len(refusing.keys) == 3
