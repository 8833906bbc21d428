"""Interviews by phone through responses' HTTP routes (real PostgreSQL, real broker): the
interviewer's list one citizen at a time, an interview that counts once with mode phone, a web
answer that takes the citizen off the list before the next call, "refused" and "call back",
the audit of every showing of a number, and the scope and municipality binding (403)."""

from __future__ import annotations

import json
import logging
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from interview_helpers import (
    INTERVIEW_ID,
    PHONE,
    audit_rows,
    interview_of,
    issue_with_phones,
    link_status,
    phone_views,
    pseudonym,
    responses_of,
)
from responses_helpers import read_events
from services.responses.models import InterviewRow
from shared.testing.fixtures import bearer

ANSWERS = {"q1": "meget_enig", "q2": "enig", "q13": "tilfreds", "q15": "Ring til mig på 22334455"}


def a_round() -> str:
    return f"tlf-{uuid.uuid4().hex[:8]}"


def interviewer(dev_issuer, kommune: str = "751", subject: str | None = None) -> dict[str, str]:
    return bearer(dev_issuer.mint(subject or f"interviewer-{kommune}-{uuid.uuid4().hex[:6]}", ["responses:interview"], kommune))


async def next_call(client, round_id: str, who: dict, **params) -> tuple[str | None, str | None, str]:
    """(interview id, phone number shown, the page) of the interviewer's page."""
    r = await client.get(f"/interview/rounds/{round_id}", headers=who, params=params)
    assert r.status_code == 200, r.text
    assert r.headers["cache-control"] == "no-store"
    found, phone = INTERVIEW_ID.search(r.text), PHONE.search(r.text)
    return (found.group(1) if found else None), (phone.group(1) if phone else None), r.text


async def test_an_interview_counts_once_with_mode_phone_and_every_showing_is_audited(
    app, client, module_env, dev_issuer, caplog
):
    caplog.set_level(logging.DEBUG)
    round_id = a_round()
    [token] = await issue_with_phones(app, module_env, 1, round_id=round_id, phones=["+4520304050"])
    who = interviewer(dev_issuer, subject="anna-interviewer")

    interview_id, phone, page = await next_call(client, round_id, who)
    assert phone == "+4520304050" and 'href="tel:+4520304050"' in page
    assert "Læs op for borgeren" in page and "Borgeren vil ikke deltage" in page and "Ring igen senere" in page
    # A reload shows the same citizen (the interviewer's own call), and is audited again.
    assert (await next_call(client, round_id, who))[0] == interview_id
    views = await phone_views(app, interview_id)
    assert len(views) == 2
    assert {(v["actor"], v["kommunekode"], v["status"]) for v in views} == {("anna-interviewer", "751", 200)}
    assert views[0]["resource"] == {"round_id": round_id, "interview_id": interview_id}

    r = await client.post(f"/interview/rounds/{round_id}/calls/{interview_id}/answers", data=ANSWERS, headers=who)
    assert r.status_code == 303 and r.headers["location"].endswith("done=completed")
    [row] = await responses_of(app, token)
    assert (row.mode, row.language, row.entered_by) == ("phone", "da", "anna-interviewer")
    assert "22334455" not in row.answers["q15"]  # free text scrubbed as on the web
    assert await link_status(app, token) == "submitted"
    assert (await interview_of(app, token)).outcome == "completed"

    # The same interview sent again (a double click) is not counted twice.
    again = await client.post(f"/interview/rounds/{round_id}/calls/{interview_id}/answers", data=ANSWERS, headers=who)
    assert again.status_code == 303 and again.headers["location"].endswith("done=answered")
    assert len(await responses_of(app, token)) == 1
    events = [e for e in await read_events(module_env["KAFKA_BOOTSTRAP_SERVERS"], module_env["KAFKA_TOPIC_PREFIX"] + "response.submitted", 1)
              if e["data"]["pseudonym"] == pseudonym(token)]
    assert len(events) == 1 and events[0]["data"]["mode"] == "phone" and events[0]["data"]["language"] == "da"

    # Nobody left; the page says so.
    assert (await next_call(client, round_id, who))[0] is None
    # The number is in no log record and in no audit row.
    assert "20304050" not in caplog.text
    assert not any("20304050" in json.dumps(row, default=str) for row in await audit_rows(app))


async def test_a_web_answer_takes_the_citizen_off_the_list_before_the_next_call(app, client, module_env, dev_issuer):
    round_id = a_round()
    tokens = await issue_with_phones(app, module_env, 3, round_id=round_id)
    who = interviewer(dev_issuer)
    first, _, page = await next_call(client, round_id, who)
    assert 'id="waiting">3<' in page
    token_of = {str((await interview_of(app, t)).id): t for t in tokens}
    on_the_phone = token_of[first]
    others = [t for t in tokens if t != on_the_phone]

    # Both citizens not on the phone answer on the web meanwhile.
    for t in others:
        assert (await client.post(f"/api/survey/{t}/submission", json={"answers": {"q1": 2}, "language": "en"})).status_code == 201
    assert [r.language for t in others for r in await responses_of(app, t)] == ["en", "en"]
    # The citizen on the phone declines: the next call finds nobody, the web answers took the other two off.
    r = await client.post(f"/interview/rounds/{round_id}/calls/{first}/refused", headers=who)
    assert r.status_code == 303 and r.headers["location"].endswith("done=refused")
    interview_id, phone, page = await next_call(client, round_id, who, done="refused")
    assert interview_id is None and phone is None and 'id="empty"' in page and "Afslaget er registreret" in page
    # Refused: off the list for good, the link still open (the letter's form still counts).
    assert (await interview_of(app, on_the_phone)).outcome == "refused"
    assert await link_status(app, on_the_phone) == "open"


async def test_a_web_answer_during_the_call_wins_and_the_phone_answers_are_not_counted(app, client, module_env, dev_issuer):
    round_id = a_round()
    [token] = await issue_with_phones(app, module_env, 1, round_id=round_id)
    who = interviewer(dev_issuer)
    interview_id, _, _ = await next_call(client, round_id, who)
    assert (await client.post(f"/api/survey/{token}/submission", json={"answers": {"q1": 2}})).status_code == 201
    r = await client.post(f"/interview/rounds/{round_id}/calls/{interview_id}/answers", data=ANSWERS, headers=who)
    assert r.status_code == 303 and r.headers["location"].endswith("done=answered")
    assert [row.mode for row in await responses_of(app, token)] == ["web"]
    page = (await client.get(r.headers["location"], headers=who)).text
    assert "har allerede svaret" in page


async def test_call_back_takes_the_citizen_off_the_list_until_the_time_comes(app, client, module_env, dev_issuer):
    round_id = a_round()
    [token] = await issue_with_phones(app, module_env, 1, round_id=round_id)
    who = interviewer(dev_issuer)
    interview_id, _, _ = await next_call(client, round_id, who)

    # A time in the past, or no time: a 422 page saying what is wrong, the same citizen again.
    past = await client.post(f"/interview/rounds/{round_id}/calls/{interview_id}/call-back", data={"call_back_at": "2020-01-01T10:00"}, headers=who)
    assert past.status_code == 422 and "skal ligge i fremtiden" in past.text and interview_id in past.text
    garbled = await client.post(f"/interview/rounds/{round_id}/calls/{interview_id}/call-back", data={"call_back_at": "i morgen"}, headers=who)
    assert garbled.status_code == 422 and "dato og klokkeslæt" in garbled.text
    assert (await interview_of(app, token)).outcome is None

    tomorrow = (datetime.now(UTC) + timedelta(days=1)).astimezone().strftime("%Y-%m-%dT%H:%M")
    r = await client.post(f"/interview/rounds/{round_id}/calls/{interview_id}/call-back", data={"call_back_at": tomorrow}, headers=who)
    assert r.status_code == 303 and r.headers["location"].endswith("done=call_back")
    row = await interview_of(app, token)
    assert row.outcome == "call_back" and row.call_back_at > datetime.now(UTC) and row.calls == 1
    assert (await next_call(client, round_id, who))[0] is None

    # The time comes: the citizen is back on the list, with the call back shown.
    async with app.state.runtime.sessionmaker() as session:
        await session.execute(sa.update(InterviewRow).where(InterviewRow.id == row.id)
                              .values(call_back_at=datetime.now(UTC) - timedelta(minutes=1)))
        await session.commit()
    again, _, page = await next_call(client, round_id, who)
    assert again == interview_id and "Aftalt at ringe igen" in page and "Tidligere opkald: 1" in page


async def test_one_citizen_at_a_time_and_the_english_interview(app, client, module_env, dev_issuer):
    round_id = a_round()
    tokens = await issue_with_phones(app, module_env, 2, round_id=round_id)
    anna, bo = interviewer(dev_issuer, subject="anna"), interviewer(dev_issuer, subject="bo")
    first = (await next_call(client, round_id, anna))[0]
    second = (await next_call(client, round_id, bo))[0]
    assert first and second and first != second  # two interviewers never call the same citizen
    assert (await next_call(client, round_id, anna))[0] == first  # a reload shows one's own call again
    # Bo cannot record Anna's call while she has it.
    r = await client.post(f"/interview/rounds/{round_id}/calls/{first}/refused", headers=bo)
    assert r.status_code == 303 and r.headers["location"].endswith("done=taken")
    # An interview in English is recorded as English.
    page = (await client.get(f"/interview/rounds/{round_id}", headers=bo, params={"lang": "en"})).text
    assert 'lang="en"' in page and "Read aloud to the citizen" in page
    r = await client.post(f"/interview/rounds/{round_id}/calls/{second}/answers?lang=en", data={"q1": "enig"}, headers=bo)
    assert r.status_code == 303
    [row] = [r for t in tokens for r in await responses_of(app, t)]
    assert (row.mode, row.language) == ("phone", "en")
    # Invalid answers: a 422 page naming the question, nothing stored.
    bad = await client.post(f"/interview/rounds/{round_id}/calls/{first}/answers", data={"q1": "maaske"}, headers=anna)
    assert bad.status_code == 422 and "q1" in bad.text
    assert [len(await responses_of(app, t)) for t in tokens] in ([1, 0], [0, 1])


async def test_scope_and_municipality_binding(app, client, module_env, dev_issuer):
    round_id = a_round()
    [token] = await issue_with_phones(app, module_env, 1, round_id=round_id, kommunekode="751")
    url = f"/interview/rounds/{round_id}"
    assert (await client.get(url)).status_code == 401
    no_scope = bearer(dev_issuer.mint("reader-751", ["aggregates:read"], "751"))
    paper = bearer(dev_issuer.mint("paper-751", ["responses:paper"], "751"))
    assert (await client.get(url, headers=no_scope)).status_code == 403
    assert (await client.get(url, headers=paper)).status_code == 403
    # An interviewer of another municipality sees nobody, and cannot act on 751's citizen.
    stranger = interviewer(dev_issuer, "101")
    assert (await next_call(client, round_id, stranger))[0] is None
    interview_id = str((await interview_of(app, token)).id)
    assert not await phone_views(app, interview_id)  # nothing shown, nothing audited
    for path, data in (("answers", ANSWERS), ("refused", {}), ("call-back", {"call_back_at": (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")})):
        r = await client.post(f"{url}/calls/{interview_id}/{path}", data=data, headers=stranger)
        assert r.status_code == 403, (path, r.status_code, r.text)
        r = await client.post(f"{url}/calls/{interview_id}/{path}", data=data, headers=no_scope)
        assert r.status_code == 403
    row = await interview_of(app, token)
    assert (row.outcome, row.calls) == (None, 0) and not await responses_of(app, token)
    # An unknown interview of the round: 404.
    assert (await client.post(f"{url}/calls/{uuid.uuid4()}/refused", headers=interviewer(dev_issuer))).status_code == 404
    # KL's interviewer (kommuner:all) reaches every municipality.
    kl = bearer(dev_issuer.mint("kl-interviewer", ["responses:interview", "kommuner:all"]))
    assert (await next_call(client, round_id, kl))[0] == interview_id
