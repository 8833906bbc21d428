"""Responses follows the round (round.defined): a link of a round responses has no definition
of works; once the round's fieldwork is over (its phase, or its end date passing) every page of
the link shows the closed page, every POST (page, opt-out, JSON API, paper) is refused with it
or a 410, and the draft the citizen saved stays stored. Real PostgreSQL, real broker."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from responses_helpers import csrf_of, define_round, issue, round_defined, token_hash
from services.responses.domain.rounds import ENDED_PHASES, closed_sql, fieldwork_over
from services.responses.models import Respondent, Response
from shared.events import ROUND_PHASES
from shared.testing.fixtures import bearer

CLOSED = "Undersøgelsen er slut"
DRAFT_KEPT = "Har du gemt svar undervejs, er de ikke slettet."


def a_round() -> str:
    return f"r-end-{uuid.uuid4().hex[:8]}"


async def _respondent(app, token: str) -> Respondent:
    async with app.state.runtime.sessionmaker() as session:
        return await session.get(Respondent, token_hash(token))


async def _save_draft(client, token: str) -> None:
    page = await client.get(f"/s/{token}/side/1")
    assert page.status_code == 200
    shown = re.search(r'name="shown" value="([^"]*)"', page.text).group(1)
    saved = await client.post(f"/s/{token}/side/1", data={"csrf_token": csrf_of(page.text), "shown": shown,
                                                          "action": "save", "q1": "enig"})
    assert saved.status_code == 303 and saved.headers["location"].endswith("/gemt")


async def test_a_round_without_a_definition_is_open_and_an_ended_one_closes_keeping_drafts(
        app, client, kafka_bootstrap, prefix, dev_issuer):
    round_id = a_round()
    token, other, paper = await issue(app, kafka_bootstrap, prefix, 3, round_id=round_id)

    # No definition yet (it travels on another topic than the links): the link works.
    await _save_draft(client, token)
    # Defined and in fieldwork, its end ahead: still open.
    await define_round(app, kafka_bootstrap, prefix, round_defined(round_id, 1, fieldwork_ends_at=datetime.now(UTC) + timedelta(days=3)))
    assert (await client.get(f"/s/{token}")).status_code == 200
    # Forms still open in the citizens' browsers when fieldwork ends.
    last_page = await client.get(f"/s/{token}/side/5")
    csrf_token = csrf_of(last_page.text)
    shown = re.search(r'name="shown" value="([^"]*)"', last_page.text).group(1)

    # The operator ends fieldwork early.
    await define_round(app, kafka_bootstrap, prefix, round_defined(round_id, 2, "fieldwork_ended"))
    opened = await client.get(f"/s/{token}")
    assert opened.status_code == 410 and CLOSED in opened.text and DRAFT_KEPT in opened.text
    for path in ("/side/1", "/side/2", "/gemt", "/afmeld"):
        page = await client.get(f"/s/{token}{path}")
        assert page.status_code == 410 and CLOSED in page.text, path
    english = await client.get(f"/s/{token}?lang=en")
    assert english.status_code == 410 and "The survey has ended" in english.text

    # Every POST is refused with the same page, and nothing is written.
    for action in ("next", "save", "submit"):
        posted = await client.post(f"/s/{token}/side/5", data={"csrf_token": csrf_token, "shown": shown,
                                                               "action": action})
        assert posted.status_code == 410 and CLOSED in posted.text, action
    opted = await client.post(f"/s/{other}/afmeld", data={"csrf_token": csrf_token})
    assert opted.status_code == 410 and CLOSED in opted.text
    api = await client.post(f"/api/survey/{other}/submission", json={"answers": {"q1": 4}})
    assert api.status_code == 410 and "fieldwork has ended" in api.json()["detail"]
    assert (await client.post(f"/api/survey/{other}/opt-out")).status_code == 410
    operator = bearer(dev_issuer.mint("kl-paper", ["responses:paper", "kommuner:all"]))
    keyed = await client.post("/api/paper/responses", json={"token": paper, "answers": {"q1": 4}}, headers=operator)
    assert keyed.status_code == 410

    # The draft is kept; nothing was spent or stored.
    kept = await _respondent(app, token)
    assert kept.status == "open" and kept.draft == {"q1": "enig"}
    assert {(await _respondent(app, t)).status for t in (other, paper)} == {"open"}
    async with app.state.runtime.sessionmaker() as session:
        answers = await session.scalar(sa.select(sa.func.count()).select_from(Response).where(
            Response.token_hash.in_([token_hash(t) for t in (token, other, paper)])))
    assert answers == 0

    # A replayed lower revision does not reopen the round.
    await define_round(app, kafka_bootstrap, prefix, round_defined(round_id, 1))
    assert (await client.get(f"/s/{token}")).status_code == 410


async def test_the_end_date_passing_closes_without_a_new_phase(app, client, kafka_bootstrap, prefix):
    round_id = a_round()
    [token] = await issue(app, kafka_bootstrap, prefix, round_id=round_id)
    ended = datetime(2026, 10, 1, tzinfo=UTC) - timedelta(hours=2)  # midnight in Copenhagen (summer time)
    await define_round(app, kafka_bootstrap, prefix, round_defined(round_id, 1, "in_fieldwork", fieldwork_ends_at=ended))
    page = await client.get(f"/s/{token}")
    assert page.status_code == 410 and "Sidste dag for at svare var den 30. september 2026." in page.text
    assert (await client.post(f"/api/survey/{token}/submission", json={"answers": {}})).status_code == 410


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(phase=st.sampled_from(ROUND_PHASES), ends=st.none() | st.integers(-3, 3), now=st.integers(-3, 3))
async def test_the_submits_sql_is_the_pure_rule(app, phase, ends, now):
    """closed_sql, generated from the rule's constants, decides as fieldwork_over does."""
    base = datetime(2026, 9, 1, tzinfo=UTC)
    ends_at = None if ends is None else base + timedelta(hours=ends)
    at = base + timedelta(hours=now)
    async with app.state.runtime.sessionmaker() as session:
        closed = await session.scalar(
            sa.text(f"SELECT {closed_sql('s', ':now')} IS TRUE FROM (SELECT CAST(:phase AS text) AS phase, "
                    "CAST(:ends AS timestamptz) AS fieldwork_ends_at) AS s"),
            {"phase": phase, "ends": ends_at, "now": at})
    assert closed == fieldwork_over(phase, ends_at, at)
    assert fieldwork_over(phase, None, at) == (phase in ENDED_PHASES)
    assert not fieldwork_over(None, ends_at, at)  # an unknown round is open
