"""Issue 22's campaign, end to end on the five running services: KL's operator defines a round
with an invitation date in the future, vendors deliver, the operator previews, caps and confirms
the allocation and draws; nothing goes out before the invitation date; at the date every letter
goes; the first reminder follows its date and skips the citizens who answered; ending fieldwork
cancels the second reminder and a link shows the closed page; and at every phase the round
overview (analytics, built from events) shows what each service counts itself."""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.testing.fixtures import bearer
from shared.testing.round import (
    define_round_at,
    request_with_retry,
    survey_token,
    synthetic_rows,
    wait_for,
    wait_for_phase_at,
)

pytestmark = pytest.mark.e2e

ROUND = "campaign-1"
KOMMUNER = {"101": 14, "751": 8}
CAP = 10  # the operator's max_sample: 101's census of 14 is capped at 10
INVITATION_IN = 10.0  # seconds from the schedule to the invitation
REMINDER_1_IN = 26.0  # ... to the first reminder (answers in between)
REMINDER_2_IN = 600.0  # ... to the second, which ending fieldwork cancels
OVERVIEW_SECONDS = 15  # "within seconds": dispatch looks every 2 s, the events take well under a second


def sink_messages(sink: Path, round_id: str) -> dict[str, str]:
    """Idempotency key (<invitation>.<step>.<channel>) -> link token of the round's messages in
    the dev sink (one folder per round and municipality; a file being written starts with a dot)."""
    found = {}
    folder = sink / round_id
    if folder.exists():
        for path in folder.rglob("*"):
            if path.is_file() and not path.name.startswith(".") and (token := survey_token(path.read_bytes())):
                found[path.stem] = token
    return found


def by_step(messages: dict[str, str]) -> Counter:
    return Counter(key.split(".")[1] for key in messages)


class Campaign:
    def __init__(self, stack, admin: str) -> None:
        self.stack, self.admin = stack, admin

    def get(self, service: str, path: str, **kwargs):
        r = request_with_retry("GET", f"{self.stack[service].url}{path}", headers=bearer(self.admin), **kwargs)
        return r

    def post(self, service: str, path: str, body: dict | None = None):
        return request_with_retry("POST", f"{self.stack[service].url}{path}", json=body, headers=bearer(self.admin))

    def overview(self) -> dict | None:
        r = self.get("analytics", f"/rounds/{ROUND}/overview")
        return r.json() if r.status_code == 200 else None

    def dispatch_steps(self) -> dict[tuple, int]:
        status = self.get("dispatch", f"/rounds/{ROUND}/status").json()
        return {(s["kommunekode"], s["step"], s["channel"], s["status"]): s["count"] for s in status["steps"]}

    def until_overview(self, check, what: str) -> dict:
        """The overview once ``check(overview)`` holds (within seconds of the services' change)."""
        return wait_for(lambda: (o := self.overview()) is not None and check(o) and o, OVERVIEW_SECONDS, what)

    def overview_messages_equal_dispatch(self) -> dict:
        """The overview's messages per municipality, step, channel and status are dispatch's own."""
        def equal(o):
            shown = {(f["kommunekode"], m["step"], m["channel"], status): n
                     for f in o["municipalities"] for m in f["messages"] for status, n in m["statuses"].items()}
            return shown == self.dispatch_steps()

        return self.until_overview(equal, "the overview's messages to equal dispatch's status")


def test_campaign_end_to_end_with_the_overview_at_every_phase(stack, dev_issuer, module_env):
    sink = Path(module_env["DEV_SINK_DIR"])
    admin = dev_issuer.mint("kl-operator", ["rounds:admin", "aggregates:read", "kommuner:all"])
    c = Campaign(stack, admin)

    # --- planned: the operator defines the round (no dates yet: they are confirmed after the draw).
    define_round_at(stack["ingest"].url, admin, ROUND, kommuner=list(KOMMUNER), delivery_deadline=None)
    o = c.until_overview(lambda o: o["phase"] == "planned", "the overview to show the planned round")
    assert [f["kommunekode"] for f in o["municipalities"]] == sorted(KOMMUNER)
    assert o["waits_for"] == ["den første leverance fra en kommune"]

    # --- collecting_extracts: the vendors deliver (one row in 751's file is broken).
    vendor = dev_issuer.mint("momentum-dev", ["extracts:write"], list(KOMMUNER))
    for i, (kommunekode, size) in enumerate(KOMMUNER.items()):
        rows = synthetic_rows(size, seed=100 + i)
        if kommunekode == "751":
            rows.append({**rows[0], "cpr": "320199-1234"})  # no such date: a rejected row
        r = request_with_retry("POST", f"{stack['ingest'].url}/rounds/{ROUND}/extracts/{kommunekode}",
                               json={"reference_date": "2023-08-01", "rows": rows}, headers=bearer(vendor))
        assert r.status_code == 201, r.text
    deliveries = c.get("ingest", f"/rounds/{ROUND}/deliveries").json()
    assert {d["kommunekode"]: d["rows_rejected"] for d in deliveries} == {"101": 0, "751": 1}

    def deliveries_equal(o):
        shown = {f["kommunekode"]: (f["deliveries"][0]["delivered_by"], f["rows_read"], f["rows_accepted"], f["rows_rejected"],
                                    f["rows_excluded"]) for f in o["municipalities"] if f["deliveries"]}
        return o["phase"] == "collecting_extracts" and shown == {
            d["kommunekode"]: (d["delivered_by"], d["rows_read"], d["rows_valid"], d["rows_rejected"], d["rows_excluded"])
            for d in deliveries
        }

    c.until_overview(deliveries_equal, "the overview's deliveries to equal ingest's")

    # --- the allocation: previewed with the operator's cap, which wins over the 200-answers rule in 101.
    wait_for(lambda: c.get("sampling", f"/rounds/{ROUND}/frame").status_code == 200
             and sum(s["population"] for s in c.get("sampling", f"/rounds/{ROUND}/frame").json()["strata"]) == sum(KOMMUNER.values()),
             60, "the sampling frame")
    r = c.post("sampling", f"/rounds/{ROUND}/allocation", {"rules": {"min_sample": 5, "max_sample": CAP}})
    assert r.status_code == 200, r.text
    allocation = {m["kommunekode"]: m for m in r.json()["municipalities"]}
    assert allocation["101"]["sample"] == CAP and allocation["101"]["cap_conflict"] is not None
    r = c.post("sampling", f"/rounds/{ROUND}/allocation/confirm")
    assert r.status_code == 200 and r.json()["status"] == "confirmed", r.text

    def allocation_equal(o, stage):
        shown = {f["kommunekode"]: (f["frame_population"], f["eligible"], f["sample"], f["capped"]) for f in o["municipalities"]}
        return o["sampling_stage"] == stage and shown == {
            k: (m["population"], m["eligible"], m["sample"], m["cap_conflict"] is not None) for k, m in allocation.items()
        }

    c.until_overview(lambda o: allocation_equal(o, "confirmed"), "the overview's allocation to equal sampling's")

    # --- sample_drawn: the draw plans the letters, and nothing is sent.
    r = c.post("sampling", f"/rounds/{ROUND}/draws", {"seed": 22})
    assert r.status_code == 201, r.text
    sampled = r.json()["sampled"]
    assert sampled == CAP + KOMMUNER["751"]
    wait_for_phase_at(stack["ingest"].url, admin, ROUND, "sample_drawn")
    wait_for(lambda: sum(n for (_, step, _, status), n in c.dispatch_steps().items()
                         if step == "invitation" and status == "waiting_for_schedule") == sampled, 60, "dispatch to plan")
    o = c.until_overview(lambda o: allocation_equal(o, "drawn") and o["phase"] == "sample_drawn", "the drawn sample")
    assert o["total"]["sample"] == sampled and "udsendelsesdatoerne" in o["waits_for"][0]
    c.overview_messages_equal_dispatch()

    # --- fieldwork_scheduled: the operator confirms the dates; nothing goes before the invitation.
    t0 = datetime.now(UTC)
    invitation_at = t0 + timedelta(seconds=INVITATION_IN)
    reminders_at = [t0 + timedelta(seconds=REMINDER_1_IN), t0 + timedelta(seconds=REMINDER_2_IN)]
    r = c.post("ingest", f"/rounds/{ROUND}/schedule", {
        "invitation_at": invitation_at.isoformat(), "reminders_at": [t.isoformat() for t in reminders_at],
        "fieldwork_ends_at": (t0 + timedelta(days=1)).isoformat(),
    })
    assert r.status_code == 200 and r.json()["phase"] == "fieldwork_scheduled", r.text
    wait_for(lambda: c.get("dispatch", f"/rounds/{ROUND}/status").json()["sending"] == "scheduled", 10, "dispatch to follow the schedule")
    o = c.overview_messages_equal_dispatch()
    assert o["phase"] == "fieldwork_scheduled" and o["sending"] == "scheduled"
    assert sum(m["planned"] for m in o["total"]["messages"]) == 3 * sampled and o["total"]["invited"] == 0
    while datetime.now(UTC) < invitation_at - timedelta(seconds=1):
        assert sink_messages(sink, ROUND) == {}, "a message went out before the invitation date"
        assert not [k for k, n in c.dispatch_steps().items() if k[3] == "sent" and n]
        time.sleep(0.5)

    # --- in_fieldwork: at the date every invitation goes, none before it.
    letters = wait_for(lambda: (m := sink_messages(sink, ROUND)) and by_step(m)["invitation"] >= sampled and m, 30,
                       "every invitation in the sink")
    first_sent = datetime.now(UTC)
    assert first_sent >= invitation_at
    assert by_step(letters) == {"invitation": sampled}
    wait_for_phase_at(stack["ingest"].url, admin, ROUND, "in_fieldwork", timeout=30)
    tokens = sorted(letters.values())
    answered = tokens[: len(tokens) // 3]
    for token in answered:
        r = request_with_retry("POST", f"{stack['responses'].url}/api/survey/{token}/submission", json={"answers": {"q1": 4, "q13": 5}})
        assert r.status_code == 201, r.text
    o = c.until_overview(lambda o: o["total"]["answers"] == len(answered) and o["total"]["invited"] == sampled
                         and o["phase"] == "in_fieldwork", "the overview to count the answers")
    assert sum(o["total"]["answers_by_day"]) == len(answered) and o["total"]["response_rate"] == pytest.approx(len(answered) / sampled)
    # Dispatch has stopped the answered citizens' reminders before the first reminder's date.
    wait_for(lambda: sum(n for (_, step, _, status), n in c.dispatch_steps().items()
                         if step == "reminder_1" and status == "skipped") == len(answered), 10, "dispatch to skip answered citizens")
    assert datetime.now(UTC) < reminders_at[0], "the answers took too long: the first reminder's date has passed"
    assert by_step(sink_messages(sink, ROUND)) == {"invitation": sampled}  # no reminder before its date
    c.overview_messages_equal_dispatch()

    # --- the first reminder, at its date, to those who did not answer.
    unanswered = sampled - len(answered)
    messages = wait_for(lambda: (m := sink_messages(sink, ROUND)) and by_step(m)["reminder_1"] >= unanswered and m,
                        30, "the first reminders in the sink")
    assert datetime.now(UTC) >= reminders_at[0]
    assert by_step(messages) == {"invitation": sampled, "reminder_1": unanswered}
    reminded = {token for key, token in messages.items() if ".reminder_1." in key}
    assert reminded.isdisjoint(answered) and len(reminded) == unanswered
    o = c.overview_messages_equal_dispatch()
    line = {(m["step"], m["channel"]): m for m in o["total"]["messages"]}
    assert (line[("reminder_1", "letter")]["sent"], line[("reminder_1", "letter")]["skipped"]) == (unanswered, len(answered))

    # --- fieldwork_ended: the operator ends fieldwork; the second reminder is cancelled, links close.
    r = c.post("ingest", f"/rounds/{ROUND}/end-fieldwork")
    assert r.status_code == 200 and r.json()["phase"] == "fieldwork_ended", r.text
    wait_for(lambda: sum(n for (_, step, _, status), n in c.dispatch_steps().items()
                         if step == "reminder_2" and status == "cancelled") == unanswered, 15, "dispatch to cancel the second reminder")
    o = c.overview_messages_equal_dispatch()
    assert o["phase"] == "fieldwork_ended" and o["sending"] == "ended"
    assert {(m["step"], m["channel"]): m["cancelled"] for m in o["total"]["messages"]}[("reminder_2", "letter")] == unanswered
    assert "lukning" in o["waits_for"][0]
    closed = request_with_retry("GET", f"{stack['responses'].url}/s/{sorted(reminded)[0]}")
    assert closed.status_code == 410 and "Undersøgelsen er afsluttet" in closed.text
    time.sleep(2.5)  # a sweep or progress look after the end: still nothing more in the sink
    assert by_step(sink_messages(sink, ROUND)) == {"invitation": sampled, "reminder_1": unanswered}

    # --- the answers as analytics publishes them equal the overview's (and the test's own count).
    def rates():
        r = c.get("analytics", f"/rounds/{ROUND}/response-rates")
        rows = {row["kommunekode"]: row for row in r.json()["rows"]} if r.status_code == 200 else {}
        return rows if rows.get("national", {}).get("answers") == len(answered) else None

    rows = wait_for(rates, 60, "analytics to publish the answers")
    o = c.overview()
    assert (o["total"]["answers"], o["total"]["invited"]) == (rows["national"]["answers"], rows["national"]["invited"])
    # The page shows the same, for KL's operator behind the dashboard login.
    page = c.get("analytics", f"/dashboard/rounds/{ROUND}")
    assert page.status_code == 200 and "feltarbejde afsluttet" in page.text
