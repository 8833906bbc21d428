"""Releases over HTTP, against real PostgreSQL and a real broker: a round publishes nothing before
its first release; its tables stay as released while its data changes; the KL operator cuts
preliminary and final releases; the release loop cuts preliminary ones once the round is quiet,
and stops at a final; a restarted service serves the latest release from the table. The answers
are written with the handlers, as the consumer writes them, into the service's database."""

from __future__ import annotations

import asyncio

import pytest
import sqlalchemy as sa

from services.analytics.builder import ThreadBuilder
from services.analytics.config import AnalyticsSettings
from services.analytics.handlers import on_invitations_sent, on_responses_submitted, on_sample_drawn
from services.analytics.main import MIGRATIONS, create_app
from services.analytics.models import BUS
from services.analytics.service import NotReleased, Releases
from services.analytics.synthetic import synthetic_round
from shared.bus import UnitOfWork
from shared.db import make_engine, make_sessionmaker, migrate
from shared.events import Envelope
from shared.testing.fixtures import bearer, running_app, settings_from_env

ROUND = "2026-2"
BASELINE = sa.text("SELECT baseline FROM analytics.publication_release WHERE round_id = :r AND release = :n")


def wrapped(events) -> list[tuple[Envelope, object]]:
    return [(Envelope.wrap(e, source="test", correlation_id="releases"), e) for e in events]


class Answers:
    """Writes a synthetic round's events into analytics' database a slice at a time."""

    def __init__(self, database_url: str, round_id: str = ROUND) -> None:
        self.engine = make_engine(database_url)
        self.sessions = make_sessionmaker(self.engine)
        self.round = synthetic_round(round_id, ["101", "147"], respondents=120, seed=9, questions=("q1", "q13"))
        self.sent = 0

    async def _apply(self, handler, *args) -> None:
        async with UnitOfWork(self.sessions, BUS, source="test") as uow:
            await handler(uow, *args)
            await uow.commit()

    async def frame(self) -> None:
        for sample in self.round.samples:
            await self._apply(on_sample_drawn, *wrapped([sample])[0])
        await self._apply(on_invitations_sent, wrapped(self.round.invitations))

    async def more(self, n: int) -> None:
        await self._apply(on_responses_submitted, wrapped(self.round.responses[self.sent : self.sent + n]))
        self.sent += n


async def national_answers(client, token: str) -> tuple[int, int]:
    body = (await client.get(f"/rounds/{ROUND}/response-rates", headers=bearer(token))).json()
    return body["release"], {r["kommunekode"]: r for r in body["rows"]}["national"]["answers"]


async def releases_of(client, token: str) -> list[dict]:
    r = await client.get(f"/rounds/{ROUND}/releases", headers=bearer(token))
    assert r.status_code == 200, r.text
    return r.json()


async def test_releases_are_cut_served_and_kept(service_env, dev_issuer):
    kl = dev_issuer.mint("kl", ["aggregates:read", "kommuner:all"])
    operator = dev_issuer.mint("kl-operator", ["rounds:admin", "aggregates:read", "kommuner:all"])
    manual = settings_from_env(AnalyticsSettings, service_env, publication_release_quiet_seconds=3600)
    automatic = settings_from_env(AnalyticsSettings, service_env, publication_release_quiet_seconds=0.3)
    answers = Answers(service_env["DATABASE_URL"])
    await migrate(answers.engine, MIGRATIONS, "analytics")
    try:
        async with running_app(create_app(manual)) as client:
            await answers.frame()
            await answers.more(60)
            # Nothing is published before the first release.
            r = await client.get(f"/rounds/{ROUND}/indicators", headers=bearer(kl))
            assert r.status_code == 404 and "no release yet" in r.json()["detail"]
            assert (await client.get(f"/rounds/{ROUND}/response-rates", headers=bearer(kl))).status_code == 404
            assert (await client.get("/rounds/nope/releases", headers=bearer(kl))).status_code == 404
            assert await releases_of(client, kl) == []
            # The round is known (listed), but publishes nothing yet.
            rounds = (await client.get("/rounds", headers=bearer(kl))).json()
            assert {"round_id": ROUND, "questionnaire_id": "kl_core"} in rounds

            # Only the KL operator cuts releases.
            assert (await client.post(f"/rounds/{ROUND}/releases", json={"phase": "preliminary"}, headers=bearer(kl))).status_code == 403
            assert (await client.post(f"/rounds/{ROUND}/releases", json={"phase": "draft"}, headers=bearer(operator))).status_code == 422
            assert (await client.post("/rounds/nope/releases", json={"phase": "final"}, headers=bearer(operator))).status_code == 404
            # A scope the method does not have, or a final that would not publish everything.
            for body in ({"phase": "preliminary", "scope": "draft"}, {"phase": "final", "scope": "totals"}):
                r = await client.post(f"/rounds/{ROUND}/releases", json=body, headers=bearer(operator))
                assert r.status_code == 422 and "scope" in r.text, r.text
            # A preliminary publishes the configured scope by default: response rates, no answers.
            r = await client.post(f"/rounds/{ROUND}/releases", json={"phase": "preliminary"}, headers=bearer(operator))
            assert r.status_code == 201, r.text
            first = r.json()
            assert (first["round_id"], first["release"], first["phase"]) == (ROUND, 1, "preliminary") and first["version"] > 0
            assert (first["scope"], first["answers_published"]) == ("rates", False)
            assert await releases_of(client, kl) == [first]
            assert await national_answers(client, kl) == (1, 60)
            rates = (await client.get(f"/rounds/{ROUND}/response-rates", headers=bearer(kl))).json()
            assert rates["scope"] == "rates"
            # Its indicator tables are empty pages that say so (JSON, CSV); the rate table is full.
            page = (await client.get(f"/rounds/{ROUND}/indicators", headers=bearer(kl))).json()
            assert (page["release"], page["phase"], page["scope"], page["total"], page["rows"]) == (1, "preliminary", "rates", 0, [])
            r = await client.get(f"/rounds/{ROUND}/indicators", params={"format": "csv"}, headers=bearer(kl))
            assert r.headers["X-Release-Scope"] == "rates" and r.text.splitlines()[0].endswith(",release,phase,built_at,scope")
            assert len(r.text.splitlines()) == 1
            table = (await client.get(f"/rounds/{ROUND}/response-rates/detail", headers=bearer(kl))).json()
            assert table["scope"] == "rates" and {x["dimension"] for x in table["rows"]} == {"maalgruppe", "arm", "mode", "language"}

            # An operator's release point: answers during fieldwork (national cells and totals).
            await answers.more(10)
            r = await client.post(f"/rounds/{ROUND}/releases", json={"phase": "preliminary", "scope": "totals"}, headers=bearer(operator))
            assert r.status_code == 201 and (r.json()["release"], r.json()["scope"], r.json()["answers_published"]) == (2, "totals", True)
            page = (await client.get(f"/rounds/{ROUND}/indicators", params={"kommunekode": "national"}, headers=bearer(kl))).json()
            assert page["scope"] == "totals" and page["rows"] and not any(x["suppressed"] for x in page["rows"] if x["level"] == "total")
            assert await national_answers(client, kl) == (2, 70)

            # New answers change nothing published until the next release.
            await answers.more(20)
            await asyncio.sleep(0.5)
            assert await national_answers(client, kl) == (2, 70)

        # The release loop: a preliminary release once the round has been quiet.
        async with running_app(create_app(automatic)) as client:
            async with asyncio.timeout(90):  # the builder process starts first
                while len(await releases_of(client, kl)) < 3:
                    await asyncio.sleep(0.1)
            assert await national_answers(client, kl) == (3, 90)
            listed = await releases_of(client, kl)
            assert [(x["phase"], x["scope"]) for x in listed] == [("preliminary", "rates"), ("preliminary", "totals"), ("preliminary", "rates")]
            # The loop's release publishes response rates only.
            page = (await client.get(f"/rounds/{ROUND}/indicators", headers=bearer(kl))).json()
            assert (page["release"], page["scope"], page["rows"]) == (3, "rates", [])

            # A final release, after which the loop cuts no more and a preliminary is refused.
            r = await client.post(f"/rounds/{ROUND}/releases", json={"phase": "final"}, headers=bearer(operator))
            assert r.status_code == 201 and r.json()["release"] == 4 and r.json()["phase"] == "final"
            assert (r.json()["scope"], r.json()["answers_published"]) == ("all", True)
            r = await client.post(f"/rounds/{ROUND}/releases", json={"phase": "preliminary"}, headers=bearer(operator))
            assert r.status_code == 409 and "final" in r.json()["detail"]
            await answers.more(30)
            await asyncio.sleep(1.0)  # more than the quiet time
            assert len(await releases_of(client, kl)) == 4
            assert await national_answers(client, kl) == (4, 90)
            # A revision: the final cut again.
            r = await client.post(f"/rounds/{ROUND}/releases", json={"phase": "final"}, headers=bearer(operator))
            assert r.status_code == 201 and r.json()["release"] == 5
            assert await national_answers(client, kl) == (5, 120)

        # A restarted service serves the latest release from the table.
        async with running_app(create_app(automatic)) as client:
            page = (await client.get(f"/rounds/{ROUND}/indicators", params={"limit": 1}, headers=bearer(kl))).json()
            assert (page["release"], page["phase"], page["scope"]) == (5, "final", "all")
            assert await national_answers(client, kl) == (5, 120)
            trends = (await client.get("/trends", params={"format": "csv"}, headers=bearer(kl))).text.splitlines()
            assert trends[0].split(",")[-4:] == ["release", "phase", "built_at", "previous_release"]
            assert all(line.split(",")[-4:-2] == ["5", "final"] for line in trends[1:])
            # Every cut is in the audit log, with who cut it.
            auditor = dev_issuer.mint("auditor", ["audit:read", "kommuner:all"])
            entries = (await client.get("/audit", params={"limit": 100}, headers=bearer(auditor))).json()["entries"]
            cuts = [e for e in entries if e["action"] == "POST /rounds/{round_id}/releases" and e["actor"] == "kl-operator"]
            assert len(cuts) >= 3
    finally:
        await answers.engine.dispose()


class RecordingBuilder(ThreadBuilder):
    """The in-thread builder, noting the baseline and the scope each build is given."""

    def __init__(self, uow_factory) -> None:
        super().__init__(uow_factory)
        self.given: list[dict | None] = []
        self.scopes: list[str] = []

    async def build(self, round_id, min_count, caution_below, baseline=None, scope="all"):
        self.given.append(baseline)
        self.scopes.append(scope)
        return await super().build(round_id, min_count, caution_below, baseline, scope)


async def test_each_release_is_built_with_the_baseline_stored_with_the_previous(database_url):
    answers = Answers(database_url)
    await migrate(answers.engine, MIGRATIONS, "analytics")

    def uow() -> UnitOfWork:
        return UnitOfWork(answers.sessions, BUS, source="test")

    builder = RecordingBuilder(uow)
    releases = Releases(uow, 5, 20, builder=builder)
    try:
        await answers.frame()
        stored = []
        for phase in ("preliminary", "preliminary", "final"):
            await answers.more(40)
            info = await releases.cut(ROUND, phase)
            async with uow() as unit:
                row = (await unit.session.execute(BASELINE, {"r": ROUND, "n": info.release})).scalar_one()
            stored.append(row)
        assert builder.given == [None, stored[0], stored[1]]
        # Preliminary releases publish response rates only (the default scope), the final every
        # cell; each release's scope is stored with it.
        assert builder.scopes == ["rates", "rates", "all"]
        assert [b["scope"] for b in stored] == ["rates", "rates", "all"]
        # A rates release leaves what the growth rule holds the next release against alone, and
        # joins the rates releases the next one is held to in full.
        assert "last" not in stored[0] and len(stored[0]["rates"]) == 1 and len(stored[1]["rates"]) == 2 and stored[1]["floor"]
        assert "rates" not in stored[2] and "last" in stored[2]
        # An automatic cut with nothing new since the latest release cuts nothing.
        assert await releases.cut(ROUND, "preliminary", automatic=True) is None

        # A release stored under another layout of the publication classes is never unpickled
        # into today's: the round serves nothing until the loop has released it again, in the
        # same phase, from the stored baseline.
        async with uow() as unit:
            await unit.session.execute(sa.text("UPDATE analytics.publication_release SET layout = 'older' WHERE round_id = :r"), {"r": ROUND})
            await unit.commit()
        fresh = Releases(uow, 5, 20, builder=builder)
        async with uow() as unit:
            with pytest.raises(NotReleased):
                await fresh.latest(unit, ROUND)
        await fresh._release_due()  # noqa: SLF001 - one look of the release loop
        async with uow() as unit:
            again = await fresh.latest(unit, ROUND)
        assert (again.info.release, again.info.phase, again.info.scope) == (4, "final", "all") and builder.given[-1] == stored[2]
    finally:
        await answers.engine.dispose()
