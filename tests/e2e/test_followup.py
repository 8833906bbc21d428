"""Issue 25's adaptive follow-up, end to end on the five running services: KL's operator sets a
rule at dispatch (an extra SMS before the first reminder for the two cells answering least, a
budget of 3, a control arm), the round is drawn and invited, municipality 101 answers in full and
the others not at all; before the first reminder the rule acts. The extra messages stay within
the budget and in the cells it names (the sink, dispatch's status, the events on the topic), the
arm is on invitation.sent, and analytics publishes the response rates by follow-up arm."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from shared.testing.fixtures import bearer
from shared.testing.processes import serve_stack
from shared.testing.round import define_round_at, request_with_retry, survey_token, synthetic_rows, wait_for, wait_for_phase_at

pytestmark = pytest.mark.e2e

ROUND = "followup-1"
KOMMUNER = {"101": 12, "147": 12, "751": 12}
RULE = {"step": "reminder_1", "lowest_cells": 2, "min_invited": 1, "channel": "sms", "budget": 3,
        "control_share": 0.5, "seed": "e2e"}
LEAD_SECONDS = 6  # the rule acts this long before the first reminder (production: an hour)


@pytest.fixture(scope="module")
def followup_stack(module_env, tmp_path_factory):
    """The five services, dispatch looking at follow-up rules often and acting shortly before the step."""
    yield from serve_stack(module_env, tmp_path_factory.mktemp("logs"), PUBLICATION_RELEASE_QUIET_SECONDS="3",
                           FOLLOWUP_LEAD_SECONDS=str(LEAD_SECONDS), FOLLOWUP_INTERVAL_SECONDS="0.5")


def sink_messages(sink: Path) -> dict[str, bytes]:
    """Idempotency key (<invitation>.<step>.<channel>) -> message, for the round."""
    folder = sink / ROUND
    return {p.stem: p.read_bytes() for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")} if folder.exists() else {}


async def topic_events(env: dict[str, str], topic: str) -> list[dict]:
    consumer = AIOKafkaConsumer(env["KAFKA_TOPIC_PREFIX"] + topic, bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
                                auto_offset_reset="earliest", enable_auto_commit=False, group_id=None)
    await consumer.start()
    found = []
    try:
        quiet = 0
        while quiet < 3:
            batch = await consumer.getmany(timeout_ms=500)
            records = [r for rs in batch.values() for r in rs]
            quiet = 0 if records else quiet + 1
            found.extend(json.loads(r.value)["data"] for r in records)
    finally:
        await consumer.stop()
    return [e for e in found if e.get("round_id") == ROUND]


def test_adaptive_followup_within_budget_in_the_named_cells_with_its_arm_on_the_events(followup_stack, dev_issuer, module_env):
    stack = followup_stack
    sink = Path(module_env["DEV_SINK_DIR"])
    admin = dev_issuer.mint("kl-operator", ["rounds:admin", "aggregates:read", "kommuner:all"])

    def call(method: str, service: str, path: str, body: dict | None = None):
        return request_with_retry(method, f"{stack[service].url}{path}", json=body, headers=bearer(admin))

    def dispatch_steps() -> Counter:
        status = call("GET", "dispatch", f"/rounds/{ROUND}/status").json()
        return Counter({(s["kommunekode"], s["step"], s["channel"], s["status"]): s["count"] for s in status["steps"]})

    # The round, its deliveries, allocation and draw.
    define_round_at(stack["ingest"].url, admin, ROUND, kommuner=list(KOMMUNER), delivery_deadline=None)
    vendor = dev_issuer.mint("momentum-dev", ["extracts:write"], list(KOMMUNER))
    for i, (kommunekode, size) in enumerate(KOMMUNER.items()):
        r = request_with_retry("POST", f"{stack['ingest'].url}/rounds/{ROUND}/extracts/{kommunekode}",
                               json={"reference_date": "2023-08-01", "rows": synthetic_rows(size, seed=300 + i)},
                               headers=bearer(vendor))
        assert r.status_code == 201, r.text
    wait_for(lambda: call("GET", "sampling", f"/rounds/{ROUND}/frame").status_code == 200
             and sum(s["population"] for s in call("GET", "sampling", f"/rounds/{ROUND}/frame").json()["strata"])
             == sum(KOMMUNER.values()), 60, "the sampling frame")
    assert call("POST", "sampling", f"/rounds/{ROUND}/allocation", {"rules": {"min_sample": 5}}).status_code == 200
    assert call("POST", "sampling", f"/rounds/{ROUND}/allocation/confirm").status_code == 200
    r = call("POST", "sampling", f"/rounds/{ROUND}/draws", {"seed": 25})
    assert r.status_code == 201, r.text
    sampled = r.json()["sampled"]
    wait_for_phase_at(stack["ingest"].url, admin, ROUND, "sample_drawn")
    wait_for(lambda: sum(n for (_, step, _, _), n in dispatch_steps().items() if step == "invitation") == sampled,
             60, "dispatch to plan")

    # The operator's rule, at dispatch (a bad one is refused naming the field).
    r = call("PUT", "dispatch", f"/rounds/{ROUND}/followup", {**RULE, "lowest_cells": None})
    assert r.status_code == 422 and "exactly one of lowest_cells" in r.text, r.text
    r = call("PUT", "dispatch", f"/rounds/{ROUND}/followup", RULE)
    assert r.status_code == 200 and r.json()["applied_at"] is None, r.text

    # Invitations in a few seconds; the first reminder far off while 101 answers.
    t0 = datetime.now(UTC)
    invitation_at = t0 + timedelta(seconds=5)
    r = call("POST", "ingest", f"/rounds/{ROUND}/schedule", {
        "invitation_at": invitation_at.isoformat(), "reminders_at": [(t0 + timedelta(hours=2)).isoformat()],
        "fieldwork_ends_at": (t0 + timedelta(days=1)).isoformat()})
    assert r.status_code == 200, r.text
    letters = wait_for(lambda: (m := sink_messages(sink)) and sum(".invitation." in k for k in m) >= sampled and m,
                       60, "every invitation in the sink")
    # Who is in 101: the sink keeps a folder per round and municipality.
    in_101 = [survey_token(p.read_bytes()) for p in (sink / ROUND / "101").iterdir() if not p.name.startswith(".")]
    assert in_101 and len(letters) == sampled
    for token in in_101:
        r = request_with_retry("POST", f"{stack['responses'].url}/api/survey/{token}/submission", json={"answers": {"q1": 4}})
        assert r.status_code == 201, r.text
    wait_for(lambda: dispatch_steps()[("101", "reminder_1", "letter", "skipped")] == len(in_101), 30,
             "dispatch to record the answers")
    assert call("GET", "dispatch", f"/rounds/{ROUND}/followup").json()["applied_at"] is None

    # The operator brings the first reminder forward: the rule acts LEAD_SECONDS before it.
    reminder_at = datetime.now(UTC) + timedelta(seconds=LEAD_SECONDS + 6)
    r = call("PATCH", "ingest", f"/rounds/{ROUND}", {"reminders_at": [reminder_at.isoformat()]})
    assert r.status_code == 200, r.text
    state = wait_for(lambda: (s := call("GET", "dispatch", f"/rounds/{ROUND}/followup").json())["applied_at"] and s,
                     30, "the rule to act")
    assert datetime.now(UTC) < reminder_at, "the rule acted after its step"
    unanswered = sampled - len(in_101)
    wait_for(lambda: sum(n for (_, step, channel, status), n in dispatch_steps().items()
                         if step == "reminder_1" and channel == "letter" and status == "sent") == unanswered,
             60, "the first reminders")
    wait_for(lambda: not [k for k, n in dispatch_steps().items() if k[2] == "sms" and k[3] in ("planned", "sending") and n],
             30, "the extra messages")
    state = call("GET", "dispatch", f"/rounds/{ROUND}/followup").json()

    # The two cells answering least, none of them in 101 (every citizen of 101 answered).
    chosen = [c["stratum"] for c in state["cells"] if c["chosen"]]
    assert len(chosen) == 2 and not [c for c in chosen if c.startswith("101:")]
    counts = {c["stratum"]: c for c in state["cells"]}
    assert sum(c["answered"] for c in counts.values()) == len(in_101)
    assert all(counts[c]["answered"] == 0 for c in chosen)
    # Within the budget, only in the chosen cells.
    extra = state["arms"]["followup_extra"]
    assert 1 <= extra <= RULE["budget"] and state["arms"]["followup_control"] >= 1
    assert {row["stratum"] for row in state["by_cell"]} <= set(chosen)
    steps = dispatch_steps()
    assert sum(n for (_, step, channel, _), n in steps.items() if channel == "sms") == extra
    sms = [k for k in sink_messages(sink) if k.endswith(".reminder_1.sms")]
    assert len(sms) == steps_sent(steps, "sms") == extra  # every synthetic citizen has a phone

    # The arm on the events: the extra SMS and every reminder of the assigned citizens carry it.
    sent = asyncio.run(topic_events(module_env, "invitation.sent"))
    extra_events = [e for e in sent if e["channel"] == "sms"]
    assert len(extra_events) == extra and {e["followup_arm"] for e in extra_events} == {"followup_extra"}
    assert {e["stratum"] for e in extra_events} <= set(chosen)
    reminders = [e for e in sent if e["step"] == "reminder_1" and e["channel"] == "digital_post"]
    arms = Counter(e["followup_arm"] for e in reminders)
    assert arms["followup_extra"] == extra and arms["followup_control"] == state["arms"]["followup_control"]
    assert {e["stratum"] for e in reminders if e["followup_arm"]} <= set(chosen)
    assert all(e["followup_arm"] is None for e in sent if e["step"] == "invitation")

    # Analytics reads the arms off the events: the response rates by follow-up arm.
    def followup_rows():
        r = call("GET", "analytics", f"/rounds/{ROUND}/response-rates/detail?dimension=followup&kommunekode=national")
        rows = {row["level"]: row for row in r.json()["rows"]} if r.status_code == 200 else {}
        return rows.get("followup_extra", {}).get("invited") == extra and rows

    rows = wait_for(followup_rows, 60, "analytics to publish the rates by follow-up arm")
    assert rows["followup_control"]["invited"] == state["arms"]["followup_control"]
    assert rows["total"]["invited"] == sampled and rows["none"]["invited"] == sampled - extra - state["arms"]["followup_control"]


def steps_sent(steps: Counter, channel: str) -> int:
    return sum(n for (_, _, ch, status), n in steps.items() if ch == channel and status == "sent")
