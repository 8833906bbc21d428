"""Interviews by phone through the five services as processes, every hop over the broker: a round
whose dispatch plan offers interviews, the phone numbers released by dispatch to responses, an
interviewer of the municipality completing an interview that counts once with mode phone, web
answers taking citizens off the list before the next call, the response rates by mode in
analytics, and the audit of every number shown."""

from __future__ import annotations

import re
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
)

pytestmark = pytest.mark.e2e

KOMMUNE, SIZE = "751", 8
INTERVIEW_ID = re.compile(r"/calls/([0-9a-f-]{36})/answers")
PHONE = re.compile(r'id="phone">([^<]+)<')
WAITING = re.compile(r'id="waiting">(\d+)<')


def page(stack, round_id: str, who: dict) -> tuple[str | None, str | None, int]:
    r = request_with_retry("GET", f"{stack['responses'].url}/interview/rounds/{round_id}", headers=who)
    assert r.status_code == 200, r.text
    found, phone = INTERVIEW_ID.search(r.text), PHONE.search(r.text)
    return (found.group(1) if found else None), (phone.group(1) if phone else None), int(WAITING.search(r.text).group(1))


def test_an_interview_by_phone_counts_once_and_web_answers_leave_the_list(stack, dev_issuer, module_env):
    sink = Path(module_env["DEV_SINK_DIR"])
    admin = dev_issuer.mint("kl-operator", ["rounds:admin", "aggregates:read", "kommuner:all"])
    interviewer = bearer(dev_issuer.mint("aarhus-interviewer", ["responses:interview"], KOMMUNE))
    auditor = bearer(dev_issuer.mint("kl-auditor", ["audit:read", "kommuner:all"]))
    round_id = f"tlf-{datetime.now(UTC):%H%M%S}"
    letters_before = set(links_in_sink(sink))
    now = datetime.now(UTC)
    define_round_at(stack["ingest"].url, admin, round_id, kommuner=[KOMMUNE], delivery_deadline=None,
                    invitation_at=now, fieldwork_ends_at=now + timedelta(days=7))
    # The round offers interviews by phone: dispatch releases the numbers to responses.
    r = request_with_retry("PUT", f"{stack['dispatch'].url}/rounds/{round_id}/plan", json={"phone_interviews": True},
                           headers=bearer(admin))
    assert r.status_code == 200, r.text
    rows = synthetic_rows(SIZE, seed=77)
    vendor = dev_issuer.mint("momentum-dev", ["extracts:write"], [KOMMUNE])
    r = request_with_retry("POST", f"{stack['ingest'].url}/rounds/{round_id}/extracts/{KOMMUNE}",
                           json={"reference_date": "2023-08-01", "rows": rows}, headers=bearer(vendor))
    assert r.status_code == 201, r.text

    wait_for_frame_at(stack["sampling"].url, admin, round_id, SIZE)
    r = request_with_retry("POST", f"{stack['sampling'].url}/rounds/{round_id}/draws",
                           json={"seed": 7, "sample_per_stratum": 1000}, headers=bearer(admin))
    assert r.status_code == 201 and r.json()["sampled"] == SIZE, r.text
    schedule_round_at(stack["ingest"].url, admin, round_id)
    tokens = wait_for(lambda: (found := [t for k, t in links_in_sink(sink).items() if k not in letters_before]) and
                      len(found) >= SIZE and sorted(found), 90, "the invitations in the sink")
    assert len(tokens) == SIZE

    # The interviewer's list has every citizen (all have a number), one at a time.
    first, phone, waiting = wait_for(lambda: (p := page(stack, round_id, interviewer))[0] and p, 60, "the numbers at responses")
    assert waiting == SIZE and phone in {row["telefon"] for row in rows}
    r = request_with_retry("POST", f"{stack['responses'].url}/interview/rounds/{round_id}/calls/{first}/answers",
                           data={"q1": "enig", "q13": "meget_tilfreds"}, headers=interviewer, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].endswith("done=completed")

    # Every citizen but two answers on the web: the one interviewed is refused (one answer per link).
    web, kept = tokens[:-2], tokens[-2:]
    statuses = [request_with_retry("POST", f"{stack['responses'].url}/api/survey/{t}/submission",
                                   json={"answers": {"q1": 4}, "language": "en"}).status_code for t in web]
    assert set(statuses) <= {201, 409} and statuses.count(409) <= 1
    interviewed_on_web_list = statuses.count(409) == 1
    web_answers = statuses.count(201)
    # Before the next call the list holds only those who have not answered.
    remaining = len(kept) - (0 if interviewed_on_web_list else 1)
    second, _, waiting = page(stack, round_id, interviewer)
    assert waiting == remaining and second is not None
    r = request_with_retry("POST", f"{stack['responses'].url}/interview/rounds/{round_id}/calls/{second}/refused",
                           headers=interviewer, follow_redirects=False)
    assert r.status_code == 303
    if remaining == 2:
        third, _, _ = page(stack, round_id, interviewer)
        tomorrow = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
        r = request_with_retry("POST", f"{stack['responses'].url}/interview/rounds/{round_id}/calls/{third}/call-back",
                               data={"call_back_at": tomorrow}, headers=interviewer, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].endswith("done=call_back")
    assert page(stack, round_id, interviewer)[0] is None  # nobody left to call now

    # Analytics counts the phone answer once, beside the web answers, and reports rates by mode and language.
    def counted():
        r = request_with_retry("GET", f"{stack['analytics'].url}/rounds/{round_id}/overview", headers=bearer(admin))
        total = r.json()["total"] if r.status_code == 200 else None
        return total if total and total["answers"] == web_answers + 1 else None

    wait_for(counted, 90, "analytics to count the web answers and the interview")
    released = request_with_retry("POST", f"{stack['analytics'].url}/rounds/{round_id}/releases", json={"phase": "preliminary"},
                                  headers=bearer(admin))
    assert released.status_code == 201, released.text
    for dim, levels in (("mode", {"web", "phone"}), ("language", {"da", "en"})):
        r = request_with_retry("GET", f"{stack['analytics'].url}/rounds/{round_id}/response-rates/detail",
                               params={"dimension": dim, "kommunekode": "national"}, headers=bearer(admin))
        assert r.status_code == 200, r.text
        by_level = {row["level"]: row for row in r.json()["rows"]}
        assert set(by_level) == levels | {"total"}
        assert all(row["invited"] == SIZE for row in by_level.values())
        # One phone answer: a small cell, hidden (with a partner); never shown as 1.
        assert by_level["phone" if dim == "mode" else "da"]["answers"] in (None, 0) or by_level["phone" if dim == "mode" else "da"]["answers"] >= 5

    # Every showing of a number is in responses' audit log (who, which interview), the number nowhere in it.
    entries = request_with_retry("GET", f"{stack['responses'].url}/audit", params={"limit": 1000}, headers=auditor).json()["entries"]
    views = [e for e in entries if e["kind"] == "phone-number-view" and e["resource"].get("round_id") == round_id]
    assert len(views) == 2 + (remaining == 2) and {e["actor"] for e in views} == {"aarhus-interviewer"}
    assert first in {e["resource"]["interview_id"] for e in views}
    numbers = [row["telefon"] for row in rows]
    assert not any(n in str(entries) for n in numbers)
    # No service logged a number.
    logs = "\n".join(Path(p.log_file).read_text(errors="replace") for p in stack.values() if p.log_file)
    assert not [n for n in numbers if n in logs or n[3:] in logs]
