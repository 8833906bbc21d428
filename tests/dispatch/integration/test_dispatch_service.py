"""The dispatch service against real PostgreSQL and a real Kafka-protocol broker: plans, letters
in the sink (MeMo, XSD-valid, link findable), SF1601 and SMS adapters against local fakes,
experiment arms, no reminder after an answer, no double send under a crash at every step.

Samples arrive as sampling publishes them now (sample.drawn v2, no contacts) with ingest's
contacts.released for each chunk; how the two meet is tested in test_dispatch_contacts.py."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from dispatch_harness import (
    RecordingChannel,
    SimulatedCrash,
    answered,
    consume_all,
    invitations,
    make_settings,
    opted_out,
    produce,
    round_defined,
    sample,
    sink_files,
    step_statuses,
    wait_for,
)
from services.dispatch.channels import DevSinkChannel
from services.dispatch.domain.memo import validate_memo
from services.dispatch.domain.plan import RoundPlan, assign_arm
from services.dispatch.links import token_hash
from services.dispatch.main import create_app
from services.dispatch.models import DispatchStep, Invitation
from services.dispatch.sender import Sender
from shared.links import issued_at
from shared.testing.fixtures import bearer, running_app
from shared.testing.round import survey_token

KOMMUNE = "492"  # Ærø, a small municipality


async def test_plan_api_arms_and_invitations_in_the_sink(service_env, dev_issuer):
    settings = make_settings(service_env, reminder_interval_days=30)
    sink = Path(service_env["DEV_SINK_DIR"])
    admin = bearer(dev_issuer.mint("kl-operator", ["rounds:admin", "kommuner:all"]))
    plan = {"reminder_count": 2, "arms": {"sms_reminder": {"weight": 0.5, "reminder_channels": ["letter", "sms"]},
                                          "no_sms": 0.5}, "experiment_seed": "seed-1"}
    app = create_app(settings)
    async with running_app(app) as client:
        assert (await client.put("/rounds/r1/plan", json=plan)).status_code in (401, 403)
        response = await client.put(f"/rounds/r1/plan/{KOMMUNE}", json=plan, headers=admin)
        assert response.status_code == 200, response.text
        assert response.json()["municipalities"][KOMMUNE]["arms"]["no_sms"]["weight"] == 0.5
        assert (await client.put("/rounds/r1/plan", json={"reminder_count": 3}, headers=admin)).status_code == 422

        event = sample(service_env, "r1", KOMMUNE, 40, exempt={0})
        await produce(service_env, round_defined(event.round_id), *event.events)

        async def invitations_sent():
            counts = await step_statuses(app, "r1")
            return counts[("invitation", "letter", "sent")] == 40 and counts
        counts = await wait_for(invitations_sent, 60, "40 invitations sent")

        # One file per citizen, a valid MeMo, and the first link in it is the citizen's own.
        files = sink_files(sink)
        assert len(files) == 40
        assert {path.parent for path in files.values()} == {sink / "r1" / KOMMUNE}  # a folder per round and municipality
        by_hash = {inv.token_hash: inv for inv in await invitations(app, "r1")}
        for path in files.values():
            data = path.read_bytes()
            validate_memo(data)
            token = survey_token(data)
            assert token_hash(token) in by_hash
            # Dispatch's tag and issue time: responses tells it from a guess before link.issued arrives.
            issued = issued_at(base64.b64decode(service_env["LINK_KEY"]), token)
            assert issued is not None and abs((datetime.now(UTC) - issued).total_seconds()) < 600

        # Arms: stored, reproducible from the seed, and they changed the plan.
        invs = list(by_hash.values())
        parsed = RoundPlan.model_validate(plan)
        assert all(inv.arm == assign_arm(parsed, "r1", inv.pseudonym) for inv in invs)
        arms = {inv.arm for inv in invs}
        assert arms == {"sms_reminder", "no_sms"}
        n_sms = sum(inv.arm == "sms_reminder" for inv in invs)
        assert counts[("reminder_1", "sms", "planned")] == n_sms
        assert counts[("reminder_2", "letter", "planned")] == 40

        status = (await client.get("/rounds/r1/status", headers=admin)).json()
        assert sum(s["count"] for s in status["steps"] if s["status"] == "sent") == 40

    sent = await consume_all(service_env, "invitation.sent", 40)
    assert len(sent) == 40 and {e["arm"] for e in sent} == arms
    links = await consume_all(service_env, "link.issued", 40)
    assert {e["pseudonym"]: e["arm"] for e in links} == {inv.pseudonym: inv.arm for inv in invs}


class RacingSender(Sender):
    """Records an answer for one citizen in the middle of a batch (after the claim, before the
    send), as if response.submitted arrived exactly then."""

    victim: str | None = None

    async def render(self, claimed):
        outcomes = await super().render(claimed)
        targets = [c for c in claimed if c.step == "reminder_1" and c.pseudonym == RacingSender.victim]
        if targets:
            async with self._runtime.sessionmaker() as session:
                await session.execute(sa.update(Invitation).where(Invitation.id == targets[0].invitation_id).values(status="answered"))
                await session.commit()
        return outcomes

    async def run(self, runtime):
        self._runtime = runtime
        return await super().run(runtime)


async def test_no_reminder_after_an_answer_or_opt_out(service_env):
    # Reminders 8 s apart, counted from the invitation date (the round is defined with it now).
    settings = make_settings(service_env, reminder_interval_days=8 / 86400, reminder_count=2)
    sink = Path(service_env["DEV_SINK_DIR"])
    event = sample(service_env, "r2", KOMMUNE, 8)
    RacingSender.victim = event.persons[2].pseudonym
    app = create_app(settings, sender_class=RacingSender)
    async with running_app(app):
        await produce(service_env, round_defined(event.round_id), *event.events)

        async def invited():
            return (await step_statuses(app, "r2"))[("invitation", "letter", "sent")] == 8
        await wait_for(invited, 60, "invitations")
        # Answered and opted out well before the reminder is due.
        await produce(service_env, answered(event, event.persons[0].pseudonym), opted_out(event, event.persons[1].pseudonym))

        async def done():
            counts = await step_statuses(app, "r2")
            return counts[("reminder_2", "letter", "sent")] == 5 and counts
        counts = await wait_for(done, 60, "second reminders")
        by_pseudonym = {inv.pseudonym: inv for inv in await invitations(app, "r2")}

    files = sink_files(sink)
    for i, person in enumerate(event.persons):
        inv = by_pseudonym[person.pseudonym]
        got = {step for step in ("invitation", "reminder_1", "reminder_2") if f"{inv.id}.{step}.letter" in files}
        if i in (0, 1, 2):
            assert got == {"invitation"}, (i, got)
        else:
            assert got == {"invitation", "reminder_1", "reminder_2"}
    assert by_pseudonym[event.persons[0].pseudonym].status == "answered"
    assert by_pseudonym[event.persons[1].pseudonym].status == "opted_out"
    assert counts[("reminder_1", "letter", "skipped")] == 3


@pytest.mark.parametrize("crash", ["after_recording_attempt", "after_channel_accepted", "before_result_commit"])
async def test_no_double_send_under_a_crash(service_env, crash):
    settings = make_settings(service_env, sender_batch_size=10, reminder_count=0)
    sink = Path(service_env["DEV_SINK_DIR"])
    event = sample(service_env, f"crash-{crash}", KOMMUNE, 30)

    class CrashingSender(Sender):
        batches = 0

        async def before_result_commit(self, claimed):
            CrashingSender.batches += 1
            if crash == "before_result_commit" and CrashingSender.batches == 2:
                first.crashed = True
                raise SimulatedCrash("before the result commit")

    first = RecordingChannel(DevSinkChannel(sink), crash_at=None if crash == "before_result_commit" else 15,
                             crash_after_accept=crash == "after_channel_accepted")
    app = create_app(settings, channels={"letter": first, "sms": first}, sender_class=CrashingSender)
    async with running_app(app):
        await produce(service_env, round_defined(event.round_id), *event.events)

        async def crashed():
            return first.crashed
        await wait_for(crashed, 60, "the simulated crash")
        await asyncio.sleep(0.3)  # let the sends of the crashed batch still in flight finish
        counts = await step_statuses(app, event.round_id)
        assert counts[("invitation", "letter", "sending")] >= 1  # the crashed batch is left mid-way

    second = RecordingChannel(DevSinkChannel(sink))
    app = create_app(settings, channels={"letter": second, "sms": second})
    async with running_app(app):  # a fresh instance: reconciles the dead one's steps
        async def all_sent():
            return (await step_statuses(app, event.round_id))[("invitation", "letter", "sent")] == 30
        await wait_for(all_sent, 60, "every invitation sent after recovery")
        invs = await invitations(app, event.round_id)

    keys = {f"{inv.id}.invitation.letter" for inv in invs}
    assert set(sink_files(sink)) == keys  # exactly one letter per citizen
    # Resent only what the crash left unrecorded, and always with the same key.
    assert set(second.calls) <= keys and max(second.calls.values()) == 1
    resent = set(first.calls) & set(second.calls)
    assert len(resent) <= 10  # at most the crashed batch (the receiver deduplicated those)
    assert len(first.calls) >= 10  # the first batch went out before the crash
    assert all(first.calls[k] + second.calls[k] >= 1 for k in keys)
    sent = await consume_all(service_env, "invitation.sent", 30)
    assert sorted(e["pseudonym"] for e in sent) == sorted(p.pseudonym for p in event.persons)  # once each


async def test_sf1601_and_sms_gateway_adapters_get_what_the_receivers_expect(service_env):
    from dispatch_fakes import FakeHttpServer, sf1601_responder

    seen_first: set[str] = set()

    def flaky_once(request):  # the first try of each message meets a 503: retried with the same id
        tid = request.checked["transaction_id"]
        if tid in seen_first:
            return 200
        seen_first.add(tid)
        return 503

    sms_requests = []

    def sms_responder(request):
        body = json.loads(request.body)
        ok = body["to"].startswith("+45") and "/s/" in body["text"] and request.headers.get("x-api-key") == "sms-key" \
            and request.headers.get("idempotency-key") == body["reference"]
        sms_requests.append(body)
        return (202, json.dumps({"id": str(uuid.uuid4())}).encode()) if ok else (400, b"{}")

    with FakeHttpServer(sf1601_responder(token="sf-token", status=flaky_once)) as sf, FakeHttpServer(sms_responder) as gw:
        settings = make_settings(
            service_env, letter_channel="sf1601", sf1601_endpoint=sf.url + "/kombi", sf1601_bearer_token="sf-token",
            sms_channel="sms_gateway", sms_gateway_endpoint=gw.url + "/sms", sms_gateway_api_key="sms-key",
            survey_base_url="https://svar.borgerblik.dk/s/", reminder_count=0,
        )
        app = create_app(settings)
        async with running_app(app) as client:
            async with app.state.runtime.uow() as uow:
                from services.dispatch.service import set_plan

                await set_plan(uow.session, "r4", KOMMUNE, RoundPlan(reminder_count=0, invitation_channels=["letter", "sms"]))
                await uow.commit()
            event = sample(service_env, "r4", KOMMUNE, 3, exempt={1}, no_phone={2})
            await produce(service_env, round_defined(event.round_id), *event.events)

            async def done():
                c = await step_statuses(app, "r4")
                return c[("invitation", "letter", "sent")] == 3 and c[("invitation", "sms", "sent")] == 2 and c
            counts = await wait_for(done, 60, "letters and SMS sent")
            assert counts[("invitation", "sms", "skipped")] == 1  # no phone known

    letters = [r for r in sf.requests if r.checked.get("kombi")]
    assert len(letters) == 6  # 3 messages, each 503 once and then accepted
    by_tid: dict[str, list] = {}
    for r in letters:
        by_tid.setdefault(r.checked["transaction_id"], []).append(r)
    assert len(by_tid) == 3 and all(len(v) == 2 for v in by_tid.values())
    assert all(r.checked["pdf"].startswith(b"%PDF-") for r in letters)
    assert sorted(r.checked["kombi"] for r in letters) == ["Digital Post"] * 4 + ["Fysisk Post"] * 2
    assert len(sms_requests) == 2 and all(r["text"].count("https://svar.borgerblik.dk/s/") == 1 for r in sms_requests)
