"""Dispatch as a process (uvicorn), killed with kill -9 while Digital Post holds a batch it has
already accepted: the citizens' letters are delivered, dispatch never learnt it. One citizen
answers from that very letter before the kill. The successor's reconciliation resends the batch
with the same keys (Digital Post keeps one message per key) and every invitation ends ``sent``,
the answered citizen's too: a delivered step stays delivered; ``skipped (answered)`` is only for
a step that never left (domain/lifecycle.py, ``stops``).

A second case: a crash after the claim and before the hand-over (the re-check of the stop rule),
with an answer in between. Those steps never left: they end ``skipped (answered)`` and are not
sent."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import sqlalchemy as sa
from shared.db import make_engine

from dispatch_harness import SimulatedCrash, answered, consume_all, make_settings, produce, round_defined, sample, wait_for
from services.dispatch.main import create_app
from services.dispatch.sender import Sender
from shared.infra import free_port
from shared.testing.fixtures import running_app
from shared.testing.processes import ServiceProcess

KOMMUNE = "492"


class HoldingDigitalPost:
    """A Digital Post stand-in (SF1601's Idempotency-Key) that accepts every message at once and
    holds its answer until ``release`` is set; one delivery per key, a repeat answered 200."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.delivered: Counter = Counter()  # key -> deliveries (kept: one)
        self.received: Counter = Counter()  # key -> requests
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                key = self.headers["Idempotency-Key"]
                fake.received[key] += 1
                if not fake.delivered[key]:
                    fake.delivered[key] = 1  # in the citizen's mailbox from now on
                fake.release.wait(120)
                try:
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    pass  # the sender was killed

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/kombi"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


async def _steps(engine, round_id: str) -> Counter:
    async with engine.connect() as conn:
        rows = (await conn.execute(sa.text(
            "SELECT s.step, s.status, s.skip_reason, count(*) FROM dispatch.dispatch_step s "
            "JOIN dispatch.invitation i ON i.id = s.invitation_id WHERE i.round_id = :r GROUP BY 1, 2, 3"), {"r": round_id})).all()
    return Counter({(step, status, reason): n for step, status, reason, n in rows})


async def test_a_letter_delivered_before_a_kill_9_stays_sent_though_its_citizen_answered(service_env, tmp_path):
    digital_post = HoldingDigitalPost()
    env = {**service_env, "LETTER_CHANNEL": "sf1601", "SF1601_ENDPOINT": digital_post.url, "REMINDER_COUNT": "0",
           "SENDER_INTERVAL_SECONDS": "0.05", "RECONCILE_INTERVAL_SECONDS": "1", "SENDER_BATCH_SIZE": "10",
           "MEMO_VALIDATE_ALL": "false", "LOG_JSON": "true"}
    dispatch = ServiceProcess("dispatch", free_port(), env, log_file=tmp_path / "dispatch.log")
    engine = make_engine(service_env["DATABASE_URL"])
    event = sample(service_env, "kill9-delivered", KOMMUNE, 5)
    keys = set()
    try:
        dispatch.start().wait_healthy(90)
        await produce(service_env, round_defined(event.round_id), *event.events)

        async def all_held():
            return len(digital_post.delivered) == 5
        await wait_for(all_held, 90, "Digital Post holding the five letters")
        keys = set(digital_post.delivered)
        assert (await _steps(engine, event.round_id))[("invitation", "sending", None)] == 5

        # The first citizen answers from the letter; dispatch records the answer, then dies.
        await produce(service_env, answered(event, event.persons[0].pseudonym))

        async def answer_recorded():
            async with engine.connect() as conn:
                return await conn.scalar(sa.text("SELECT status FROM dispatch.invitation WHERE round_id = :r AND pseudonym = :p"),
                                         {"r": event.round_id, "p": event.persons[0].pseudonym}) == "answered"
        await wait_for(answer_recorded, 60, "dispatch to record the answer")
        dispatch.kill()
        digital_post.release.set()

        dispatch.start().wait_healthy(90)

        async def finished():
            steps = await _steps(engine, event.round_id)
            return sum(n for (step, status, _), n in steps.items() if status in ("sent", "skipped", "failed")) == 5 and steps
        steps = await wait_for(finished, 90, "the successor to finish the batch")
    finally:
        dispatch.stop()
        digital_post.close()
        await engine.dispose()

    assert steps == Counter({("invitation", "sent", None): 5}), steps
    assert set(digital_post.delivered) == keys and set(digital_post.delivered.values()) == {1}
    assert all(digital_post.received[k] == 2 for k in keys)  # resent once, with the same key
    sent = await consume_all(service_env, "invitation.sent", 5)
    assert sorted(e["pseudonym"] for e in sent) == sorted(p.pseudonym for p in event.persons)


async def test_a_step_claimed_but_never_handed_over_is_skipped_when_its_citizen_answered(service_env):
    settings = make_settings(service_env, sender_batch_size=10, reminder_count=0)
    event = sample(service_env, "crash-before-hand-over", KOMMUNE, 4)
    held = asyncio.Event()

    class DiesBeforeHandOver(Sender):
        async def hand_over(self, runtime, claimed):
            held.set()
            await asyncio.sleep(3600)  # the process is gone before it re-checks
            raise SimulatedCrash("never")

    app = create_app(settings, sender_class=DiesBeforeHandOver)
    async with running_app(app):
        await produce(service_env, round_defined(event.round_id), *event.events)
        await asyncio.wait_for(held.wait(), 60)
        engine = app.state.runtime.engine
        await produce(service_env, answered(event, event.persons[0].pseudonym))

        async def answer_recorded():
            async with engine.connect() as conn:
                return await conn.scalar(sa.text("SELECT status FROM dispatch.invitation WHERE round_id = :r AND pseudonym = :p"),
                                         {"r": event.round_id, "p": event.persons[0].pseudonym}) == "answered"
        await wait_for(answer_recorded, 60, "the answer recorded")
        assert (await _steps(engine, event.round_id))[("invitation", "sending", None)] == 4

    app = create_app(settings)
    async with running_app(app):
        engine = app.state.runtime.engine

        async def finished():
            steps = await _steps(engine, event.round_id)
            return sum(n for (_, status, _), n in steps.items() if status in ("sent", "skipped", "failed")) == 4 and steps
        steps = await wait_for(finished, 60, "the successor to reconcile")
    assert steps == Counter({("invitation", "sent", None): 3, ("invitation", "skipped", "answered"): 1}), steps
    sent = await consume_all(service_env, "invitation.sent", 3)
    assert event.persons[0].pseudonym not in {e["pseudonym"] for e in sent} and len(sent) == 3
