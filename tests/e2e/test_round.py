"""A whole round through the five services as processes, every hop over the broker."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from shared.testing.fixtures import bearer
from shared.testing.round import (
    define_round_at,
    links_in_sink,
    request_with_retry,
    schedule_round_at,
    synthetic_rows,
    wait_for,
    wait_for_frame_at,
    wait_for_phase_at,
)

pytestmark = pytest.mark.e2e

KOMMUNER = {"101": 24, "147": 16, "751": 12}


def deliver(stack, dev_issuer, round_id: str) -> None:
    token = dev_issuer.mint("momentum-dev", ["extracts:write"], list(KOMMUNER))
    for i, (kommunekode, size) in enumerate(KOMMUNER.items()):
        response = request_with_retry(
            "POST",
            f"{stack['ingest'].url}/rounds/{round_id}/extracts/{kommunekode}",
            json={"reference_date": "2023-08-01", "rows": synthetic_rows(size, seed=i)},
            headers=bearer(token),
        )
        assert response.status_code == 201, response.text
        assert response.json()["rows_valid"] == size


def wait_for_frame(stack, admin: str, round_id: str) -> None:
    wait_for_frame_at(stack["sampling"].url, admin, round_id, sum(KOMMUNER.values()))


def run_round(stack, dev_issuer, sink: Path, round_id: str, kill: str | None = None) -> None:
    admin = dev_issuer.mint("kl-operator", ["rounds:admin", "aggregates:read", "kommuner:all"])
    letters_before = set(links_in_sink(sink))
    # KL's operator defines the round: its municipalities, an invitation about now, a week of
    # fieldwork, the whole day as sending window (the test may run at night).
    now = datetime.now(UTC)
    define_round_at(
        stack["ingest"].url, admin, round_id,
        kommuner=list(KOMMUNER), delivery_deadline=None, invitation_at=now, fieldwork_ends_at=now + timedelta(days=7),
    )
    deliver(stack, dev_issuer, round_id)
    if kill == "ingest":
        stack["ingest"].kill()  # its outbox may still hold the population events
        stack["ingest"].start().wait_healthy(60)
    wait_for_frame(stack, admin, round_id)

    response = request_with_retry(
        "POST", f"{stack['sampling'].url}/rounds/{round_id}/draws", json={"seed": 42, "sample_per_stratum": 1000}, headers=bearer(admin)
    )
    assert response.status_code == 201, response.text
    sampled = response.json()["sampled"]
    assert sampled == sum(KOMMUNER.values())
    assert not response.json()["forced"]  # every participating municipality had delivered
    if kill is None:
        # The draw plans and sends nothing: every invitation waits for the operator's schedule.
        def planned():
            r = request_with_retry("GET", f"{stack['dispatch'].url}/rounds/{round_id}/status", headers=bearer(admin))
            steps = r.json()["steps"] if r.status_code == 200 else []
            waiting = sum(s["count"] for s in steps if s["step"] == "invitation" and s["status"] == "waiting_for_schedule")
            return steps if waiting == sampled else None

        steps = wait_for(planned, 60, "dispatch to plan every invitation")
        assert not [s for s in steps if s["status"] == "sent"]
        wait_for_phase_at(stack["ingest"].url, admin, round_id, "sample_drawn")
        assert set(links_in_sink(sink)) == letters_before
    # The operator confirms the send dates (invitation now): the letters go.
    schedule_round_at(stack["ingest"].url, admin, round_id)
    if kill in ("sampling", "dispatch", "analytics"):
        time.sleep(0.3)  # let events start flowing, then crash mid-stream
        stack[kill].kill()
        time.sleep(0.5)
        stack[kill].start().wait_healthy(60)

    def new_letters():
        return {key: token for key, token in links_in_sink(sink).items() if key not in letters_before}

    links = wait_for(lambda: (found := new_letters()) and len(found) >= sampled and found, 90, "all invitations in the sink")
    time.sleep(1.0)
    links = new_letters()
    assert len(links) == sampled  # one letter per citizen, none twice
    tokens = sorted(links.values())
    # Answer a subset: 101 and 147 get enough answers to publish, the rest stays small.
    to_answer = tokens[: len(tokens) * 2 // 3]

    if kill == "responses":
        half = len(to_answer) // 2
        answer_when_ready(stack, to_answer[:half])
        stack["responses"].kill()
        stack["responses"].start().wait_healthy(60)
        answer_when_ready(stack, to_answer[half:])
    else:
        answer_when_ready(stack, to_answer)

    # Analytics counts every answer and invitation exactly once: its own facts, as the operator's
    # overview shows them (not a publication, so no disclosure control between them and the test).
    def counted():
        r = request_with_retry("GET", f"{stack['analytics'].url}/rounds/{round_id}/overview", headers=bearer(admin))
        total = r.json()["total"] if r.status_code == 200 else None
        return total if total and total["answers"] == len(to_answer) and total["invited"] == sampled else None

    wait_for(counted, 90, "analytics to count every answer exactly once")
    time.sleep(1.0)
    total = counted()
    assert total and total["answers"] == len(to_answer) and total["invited"] == sampled  # and not more
    # A release cut now holds every answer: what it publishes agrees with the count. Fieldwork's
    # releases publish response rates (no answers) and no growth rule holds them; the national
    # row may still be hidden where the audit against the releases before (counts only grow)
    # needs it as a partner of a small cell.
    released = request_with_retry("POST", f"{stack['analytics'].url}/rounds/{round_id}/releases",
                                  json={"phase": "preliminary"}, headers=bearer(admin))
    assert released.status_code == 201, released.text
    assert (released.json()["scope"], released.json()["answers_published"]) == ("rates", False)
    r = request_with_retry("GET", f"{stack['analytics'].url}/rounds/{round_id}/response-rates", headers=bearer(admin))
    assert r.status_code == 200, r.text
    assert r.json()["release"] == released.json()["release"] and r.json()["scope"] == "rates"
    rows = {row["kommunekode"]: row for row in r.json()["rows"]}
    assert rows["national"]["invited"] == sampled
    if not rows["national"]["suppressed"]:
        assert rows["national"]["answers"] == len(to_answer)
    published = [row for k, row in rows.items() if k != "national" and not row["suppressed"]]
    assert all(row["answers"] >= 5 for row in published)
    assert sum(row["answers"] for row in published) <= len(to_answer)
    # Every letter was sent exactly once: the dispatch status agrees with the sink.
    status = request_with_retry("GET", f"{stack['dispatch'].url}/rounds/{round_id}/status", headers=bearer(admin)).json()
    sent = sum(s["count"] for s in status["steps"] if s["step"] == "invitation" and s["status"] == "sent")
    assert sent == sampled


def answer_when_ready(stack, tokens: list[str]) -> None:
    for token in tokens:
        def submit():
            r = request_with_retry(
                "POST",
                f"{stack['responses'].url}/api/survey/{token}/submission",
                json={"answers": {"q1": 4, "q13": 5}},
            )
            if r.status_code == 503 and "retry-after" in r.headers:  # link.issued not consumed yet: "being prepared"
                return None
            assert r.status_code in (201, 409), r.text
            return r

        wait_for(submit, 60, "the link to become usable", interval=0.3)


def test_thin_round_end_to_end(stack, dev_issuer, module_env):
    run_round(stack, dev_issuer, Path(module_env["DEV_SINK_DIR"]), "e2e-1")


@pytest.mark.parametrize("victim", ["ingest", "sampling", "dispatch", "responses", "analytics"])
def test_killing_a_service_mid_round_loses_nothing_and_counts_nothing_twice(stack, dev_issuer, module_env, victim):
    run_round(stack, dev_issuer, Path(module_env["DEV_SINK_DIR"]), f"kill-{victim}", kill=victim)
