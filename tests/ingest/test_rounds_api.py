"""The round as KL's operator defines and runs it at ingest (real PostgreSQL, real broker): create,
edit, the guards on deliveries, the draw (sample.drawn), scheduling, the phase clock, the early
end, the close and the round.defined revisions every change publishes."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg

from ingest_helpers import all_events
from services.ingest.config import IngestSettings
from services.ingest.main import create_app
from shared.events import Bands, RoundDefined, SampledPerson, SampleDrawn
from shared.testing.fixtures import bearer, publish_events, running_app, settings_from_env
from shared.testing.round import define_round

ROWS = [
    {"cpr": "010190-1234", "ydelse": "Dagpenge", "overgangsdato": "2022-01-01", "navn": "Test Person"},
    {"cpr": "020285-2345", "ydelse": "Sygedagpenge", "overgangsdato": "2023-03-01"},
]

def _tokens(dev_issuer) -> tuple[dict, dict]:
    operator = bearer(dev_issuer.mint("kl-operator", ["rounds:admin", "kommuner:all"]))
    vendor = bearer(dev_issuer.mint("momentum-dev", ["extracts:write"], ["101", "147", "751"]))
    return operator, vendor

async def _deliver(client, vendor, round_id: str, kommunekode: str = "101"):
    return await client.post(
        f"/rounds/{round_id}/extracts/{kommunekode}", json={"reference_date": "2023-08-01", "rows": ROWS}, headers=vendor
    )

async def _revisions(kafka_bootstrap, topic_prefix, round_id: str, at_least: int) -> list[RoundDefined]:
    async with asyncio.timeout(20):
        while True:
            events = [
                RoundDefined.model_validate(e.data)
                for e in await all_events(kafka_bootstrap, f"{topic_prefix}round.defined")
                if e.data["round_id"] == round_id
            ]
            if len(events) >= at_least:
                return events
            await asyncio.sleep(0.2)

async def _phase(client, operator, round_id: str, phase: str, timeout: float = 20) -> dict:
    async with asyncio.timeout(timeout):
        while (got := (await client.get(f"/rounds/{round_id}", headers=operator)).json())["phase"] != phase:
            await asyncio.sleep(0.1)
    return got

async def test_a_round_is_defined_guards_deliveries_and_moves_through_its_phases(service_env, dev_issuer, kafka_bootstrap, topic_prefix):
    app = create_app(settings_from_env(IngestSettings, service_env, round_clock_interval_seconds=0.2))
    operator, vendor = _tokens(dev_issuer)
    async with running_app(app) as client:
        # Unknown: refused, naming the round and who creates it.
        refused = await _deliver(client, vendor, "r-camp")
        assert refused.status_code == 404
        assert "r-camp" in refused.text and "POST /rounds" in refused.text

        created = await define_round(
            client, dev_issuer.mint("kl-operator", ["rounds:admin", "kommuner:all"]), "r-camp",
            kommuner=["101", "147"], maalgruppe_mapping_version="v1", questionnaire_version="2026.1",
        )
        assert (created["phase"], created["revision"], created["implicit"]) == ("planned", 1, False)
        again = await client.post("/rounds", json={"round_id": "r-camp", "name": "x", "reference_date": "2023-08-01"}, headers=operator)
        assert again.status_code == 409
        assert [r["round_id"] for r in (await client.get("/rounds", headers=operator)).json()] == ["r-camp"]

        # Outside the participating municipalities: refused.
        outside = await _deliver(client, vendor, "r-camp", "751")
        assert outside.status_code == 409 and "751" in outside.text
        # The first accepted delivery starts collecting; it is classified with the round's mapping.
        first = await _deliver(client, vendor, "r-camp")
        assert first.status_code == 201, first.text
        assert first.json()["mapping_version"] == "v1"
        assert (await client.get("/rounds/r-camp", headers=operator)).json()["phase"] == "collecting_extracts"
        # The reference date and the mapping no longer change; the name does.
        locked = await client.patch("/rounds/r-camp", json={"reference_date": "2024-01-01", "maalgruppe_mapping_version": "v2"}, headers=operator)
        assert locked.status_code == 409
        assert {p.split(" ")[0] for p in locked.json()["detail"]["problems"]} == {"reference_date", "maalgruppe_mapping_version"}
        assert "deliveries were classified" in locked.text
        renamed = await client.patch("/rounds/r-camp", json={"name": "Borgerblik efterår 2026"}, headers=operator)
        assert renamed.status_code == 200 and renamed.json()["name"] == "Borgerblik efterår 2026"

        # Scheduling before the draw: refused with the phase it needs.
        early = await client.post("/rounds/r-camp/schedule", json={}, headers=operator)
        assert early.status_code == 409 and "sample_drawn" in early.text

        # The draw (sampling's sample.drawn, here published as sampling would) moves the round.
        await publish_events(
            kafka_bootstrap, topic_prefix,
            [SampleDrawn(round_id="r-camp", kommunekode="101", draw_id=uuid.uuid4(), seed=1, chunk_no=0, final=True, chunk_count=1, persons=[])],
            source="sampling",
        )
        await _phase(client, operator, "r-camp", "sample_drawn")
        redelivery = await _deliver(client, vendor, "r-camp")
        assert redelivery.status_code == 409 and "sample_drawn" in redelivery.text

        # Schedule: the dates are checked as a whole (422 lists each problem) ...
        now = datetime.now(UTC)
        bad = await client.post(
            "/rounds/r-camp/schedule",
            json={"invitation_at": (now + timedelta(seconds=2)).isoformat(), "reminders_at": [now.isoformat()],
                  "fieldwork_ends_at": now.isoformat()},
            headers=operator,
        )
        assert bad.status_code == 409, bad.text
        problems = bad.json()["detail"]["problems"]
        assert any(p.startswith("reminders_at") for p in problems) and any(p.startswith("fieldwork_ends_at") for p in problems)
        # ... and an invitation a second ahead is taken; the clock starts fieldwork at it.
        invitation = now + timedelta(seconds=1.5)
        scheduled = await client.post(
            "/rounds/r-camp/schedule",
            json={"invitation_at": invitation.isoformat(), "reminders_at": [(now + timedelta(days=7)).isoformat()],
                  "fieldwork_ends_at": (now + timedelta(days=14)).isoformat()},
            headers=operator,
        )
        assert scheduled.status_code == 200, scheduled.text
        assert scheduled.json()["phase"] == "fieldwork_scheduled"
        await _phase(client, operator, "r-camp", "in_fieldwork")
        # The invitation has gone out: its time no longer moves; a later reminder does.
        moved = await client.patch("/rounds/r-camp", json={"invitation_at": (now + timedelta(days=1)).isoformat()}, headers=operator)
        assert moved.status_code == 409 and "invitation_at" in moved.text
        later = await client.patch("/rounds/r-camp", json={"reminders_at": [(now + timedelta(days=8)).isoformat()]}, headers=operator)
        assert later.status_code == 200, later.text

        # The early end: fieldwork ends now, the reminder after it is dropped.
        ended = await client.post("/rounds/r-camp/end-fieldwork", headers=operator)
        assert ended.status_code == 200, ended.text
        body = ended.json()
        assert body["phase"] == "fieldwork_ended" and body["reminders_at"] == []
        assert datetime.fromisoformat(body["fieldwork_ends_at"]) <= datetime.now(UTC)
        assert (await client.post("/rounds/r-camp/end-fieldwork", headers=operator)).status_code == 409

        closed = await client.post("/rounds/r-camp/close", json={"retention_days": 30}, headers=operator)
        assert closed.status_code == 201, closed.text
        assert (await client.get("/rounds/r-camp", headers=operator)).json()["phase"] == "closed"

        events = await _revisions(kafka_bootstrap, topic_prefix, "r-camp", 9)
        revisions = [e.revision for e in events]
        assert revisions == sorted(revisions) == list(range(1, len(events) + 1))
        assert [e.phase for e in events if e.phase != events[events.index(e) - 1].phase or e.revision == 1] == [
            "planned", "collecting_extracts", "sample_drawn", "fieldwork_scheduled", "in_fieldwork", "fieldwork_ended", "closed",
        ]
        # No personal data in the round's events.
        assert all("010190" not in e.model_dump_json() for e in events)

async def test_closing_before_fieldwork_ends_it_and_an_unknown_round_cannot_be_closed(service_env, dev_issuer):
    app = create_app(settings_from_env(IngestSettings, service_env))
    operator, vendor = _tokens(dev_issuer)
    async with running_app(app) as client:
        assert (await client.post("/rounds/nowhere/close", json={}, headers=operator)).status_code == 404
        assert (await client.get("/rounds/nowhere", headers=operator)).status_code == 404
        await define_round(client, dev_issuer.mint("kl", ["rounds:admin", "kommuner:all"]), "r-abandon", retention_days=45)
        assert (await _deliver(client, vendor, "r-abandon")).status_code == 201
        closed = await client.post("/rounds/r-abandon/close", json={}, headers=operator)
        assert closed.status_code == 201
        # The round's own retention period is the close's default.
        body = closed.json()
        days = (datetime.fromisoformat(body["purge_after"]) - datetime.fromisoformat(body["closed_at"])).days
        assert days == 45
        assert (await _deliver(client, vendor, "r-abandon")).status_code == 409
        locked = await client.patch("/rounds/r-abandon", json={"retention_days": 10}, headers=operator)
        assert locked.status_code == 409 and "retention clock" in locked.text

async def test_an_inconsistent_definition_is_refused_with_every_problem(service_env, dev_issuer):
    app = create_app(settings_from_env(IngestSettings, service_env))
    operator, _ = _tokens(dev_issuer)
    async with running_app(app) as client:
        now = datetime.now(UTC)
        response = await client.post(
            "/rounds",
            json={
                "round_id": "r-bad", "name": "Bad", "reference_date": "2023-08-01", "kommuner": ["101", "1x1"],
                "invitation_at": now.isoformat(), "fieldwork_ends_at": (now - timedelta(days=1)).isoformat(),
                "reminders_at": [(now - timedelta(hours=1)).isoformat()], "sending_window": {"start": "20:00", "end": "08:00"},
            },
            headers=operator,
        )
        assert response.status_code == 422, response.text
        fields = {p.split(":")[0] for p in response.json()["detail"]["problems"]}
        assert fields == {"kommuner", "reminders_at", "fieldwork_ends_at", "sending_window"}
        unknown_mapping = await client.post(
            "/rounds", json={"round_id": "r-map", "name": "M", "reference_date": "2023-08-01", "maalgruppe_mapping_version": "v99"},
            headers=operator,
        )
        assert unknown_mapping.status_code == 422 and "v99" in unknown_mapping.text
        naive = await client.post(
            "/rounds", json={"round_id": "r-naive", "name": "N", "reference_date": "2023-08-01", "invitation_at": "2026-09-01T09:00:00"},
            headers=operator,
        )
        assert naive.status_code == 422
        municipal = bearer(dev_issuer.mint("kbh", ["rounds:admin"], ["101"]))
        assert (await client.post("/rounds", json={"round_id": "r-x", "name": "X", "reference_date": "2023-08-01"}, headers=municipal)).status_code == 403

async def test_rounds_that_existed_before_get_an_implicit_definition_and_its_event(service_env, dev_issuer, database_url, kafka_bootstrap, topic_prefix):
    """Migration i096 defines the rounds already delivered or closed; the phase clock publishes them."""

    app = create_app(settings_from_env(IngestSettings, service_env))
    operator, vendor = _tokens(dev_issuer)
    async with running_app(app) as client:
        await define_round(client, dev_issuer.mint("kl", ["rounds:admin", "kommuner:all"]), "r-old")
        await define_round(client, dev_issuer.mint("kl", ["rounds:admin", "kommuner:all"]), "r-old-closed")
        assert (await _deliver(client, vendor, "r-old")).status_code == 201
        assert (await _deliver(client, vendor, "r-old-closed")).status_code == 201
        assert (await client.post("/rounds/r-old-closed/close", json={"retention_days": 20}, headers=operator)).status_code == 201
        # A round drawn before rounds were defined: its letters went out with the draw.
        await define_round(client, dev_issuer.mint("kl", ["rounds:admin", "kommuner:all"]), "r-old-drawn")
        assert (await _deliver(client, vendor, "r-old-drawn", "147")).status_code == 201
        person = SampledPerson(
            pseudonym="0" * 64, maalgruppe="dagpenge", stratum="147:dagpenge",
            bands=Bands(gender="M", age_band="30-39", duration_band="12-23 mdr"), inclusion_probability=1.0, design_weight=1.0,
        )
        await publish_events(
            kafka_bootstrap, topic_prefix,
            [SampleDrawn(round_id="r-old-drawn", kommunekode="147", draw_id=uuid.uuid4(), seed=1, chunk_no=0, final=True, chunk_count=1, persons=[person])],
            source="sampling",
        )
        await _phase(client, operator, "r-old-drawn", "sample_drawn")
        await asyncio.sleep(0.5)  # the release's audit entry commits with the phase
    # As the database was before rounds were defined: the table gone, the migration run again.
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("DROP TABLE ingest.round_definition")
        await conn.execute("UPDATE ingest.alembic_version SET version_num = 'i095'")
        await conn.execute("DELETE FROM ingest.outbox")
    finally:
        await conn.close()
    app = create_app(settings_from_env(IngestSettings, service_env, round_clock_interval_seconds=0.2))
    async with running_app(app) as client:
        old = (await client.get("/rounds/r-old", headers=operator)).json()
        closed = (await client.get("/rounds/r-old-closed", headers=operator)).json()
        assert (old["implicit"], old["phase"], old["reference_date"], old["maalgruppe_mapping_version"]) == (
            True, "collecting_extracts", "2023-08-01", "v2",
        )
        assert (closed["phase"], closed["retention_days"]) == ("closed", 20)
        drawn = (await client.get("/rounds/r-old-drawn", headers=operator)).json()
        assert drawn["phase"] == "in_fieldwork" and drawn["invitation_at"] is not None
        events = await _revisions(kafka_bootstrap, topic_prefix, "r-old", 3)
        implicit = [e for e in events if e.implicit]
        assert len(implicit) == 1 and implicit[0].phase == "collecting_extracts"
        # An implicit round keeps working: a municipality re-delivers.
        assert (await _deliver(client, vendor, "r-old", "101")).status_code == 201


async def test_the_phase_clock_starts_and_ends_fieldwork_at_their_times(service_env, dev_issuer, kafka_bootstrap, topic_prefix):
    app = create_app(settings_from_env(IngestSettings, service_env, round_clock_interval_seconds=0.2))
    operator, vendor = _tokens(dev_issuer)
    async with running_app(app) as client:
        await define_round(client, dev_issuer.mint("kl", ["rounds:admin", "kommuner:all"]), "r-clock")
        assert (await _deliver(client, vendor, "r-clock")).status_code == 201
        await publish_events(
            kafka_bootstrap, topic_prefix,
            [SampleDrawn(round_id="r-clock", kommunekode="101", draw_id=uuid.uuid4(), seed=1, chunk_no=0, final=True, chunk_count=1, persons=[])],
            source="sampling",
        )
        await _phase(client, operator, "r-clock", "sample_drawn")
        now = datetime.now(UTC)
        ends = now + timedelta(seconds=3)
        scheduled = await client.post(
            "/rounds/r-clock/schedule",
            json={"invitation_at": now.isoformat(), "reminders_at": [(now + timedelta(seconds=1)).isoformat()], "fieldwork_ends_at": ends.isoformat()},
            headers=operator,
        )
        assert scheduled.status_code == 200, scheduled.text
        await _phase(client, operator, "r-clock", "in_fieldwork")
        ended = await _phase(client, operator, "r-clock", "fieldwork_ended")
        # Ended by its date: the definition keeps the dates it ran by.
        assert datetime.fromisoformat(ended["fieldwork_ends_at"]) == ends
        assert len(ended["reminders_at"]) == 1
        assert datetime.now(UTC) >= ends
        assert ended["next_actions"] == ["POST /rounds/r-clock/close: start the retention clock"]


async def test_the_operator_chooses_the_languages_a_round_offers_and_the_review_they_need(service_env, dev_issuer, kafka_bootstrap, topic_prefix):
    """languages and translation_status on POST /rounds and PATCH /rounds/{id}: validated against
    the survey's eight languages (a 422 naming the bad code), carried on round.defined, locked
    once the invitations are scheduled to list them."""
    app = create_app(settings_from_env(IngestSettings, service_env))
    operator, vendor = _tokens(dev_issuer)
    body = {"name": "Sprog", "reference_date": "2023-08-01"}
    async with running_app(app) as client:
        bad = await client.post("/rounds", json={**body, "round_id": "r-sprog-bad", "languages": ["da", "xx", "de", "ar", "ar"]},
                                headers=operator)
        assert bad.status_code == 422, bad.text
        problems = bad.json()["detail"]["problems"]
        assert any("'xx', 'de' not a language the survey has" in p and "da-x-let" in p for p in problems), problems
        assert "languages: a language is listed twice" in problems
        status = await client.post("/rounds", json={**body, "round_id": "r-sprog-bad", "translation_status": "checked"},
                                   headers=operator)
        assert status.status_code == 422 and "translation_status" in status.text
        assert (await client.get("/rounds/r-sprog-bad", headers=operator)).status_code == 404  # nothing half-written

        default = await client.post("/rounds", json={**body, "round_id": "r-sprog-default"}, headers=operator)
        assert (default.json()["languages"], default.json()["translation_status"]) == ([], "draft")
        created = await client.post("/rounds", json={**body, "round_id": "r-sprog", "languages": ["ar", "da-x-let"],
                                                     "translation_status": "reviewed"}, headers=operator)
        assert created.status_code == 201, created.text
        assert (created.json()["languages"], created.json()["translation_status"]) == (["ar", "da-x-let"], "reviewed")

        edited = await client.patch("/rounds/r-sprog", json={"languages": ["uk", "pl"], "translation_status": "draft"}, headers=operator)
        assert edited.status_code == 200, edited.text
        assert (edited.json()["languages"], edited.json()["translation_status"], edited.json()["revision"]) == (["uk", "pl"], "draft", 2)
        refused = await client.patch("/rounds/r-sprog", json={"languages": ["uk", "klingon"]}, headers=operator)
        assert refused.status_code == 422 and "'klingon'" in refused.text
        removed = await client.patch("/rounds/r-sprog", json={"translation_status": None}, headers=operator)
        assert removed.status_code == 422 and "translation_status: cannot be removed" in removed.text
        assert (await client.get("/rounds/r-sprog", headers=operator)).json()["languages"] == ["uk", "pl"]

        revisions = await _revisions(kafka_bootstrap, topic_prefix, "r-sprog", 2)
        assert [(e.revision, e.languages, e.translation_status) for e in revisions] == [
            (1, ["ar", "da-x-let"], "reviewed"), (2, ["uk", "pl"], "draft")]

        # Once the invitations have gone out listing the languages, the languages stay.
        assert (await _deliver(client, vendor, "r-sprog")).status_code == 201
        draw = SampleDrawn(round_id="r-sprog", kommunekode="101", draw_id=uuid.uuid4(), seed=1, chunk_no=0, final=True, persons=[])
        await publish_events(kafka_bootstrap, topic_prefix, [draw], source="sampling", correlation_id="test:r-sprog")
        await _phase(client, operator, "r-sprog", "sample_drawn")
        now = datetime.now(UTC)
        scheduled = await client.post("/rounds/r-sprog/schedule", headers=operator, json={
            "invitation_at": now.isoformat(), "fieldwork_ends_at": (now + timedelta(days=30)).isoformat()})
        assert scheduled.status_code == 200, scheduled.text
        await _phase(client, operator, "r-sprog", "in_fieldwork")
        locked = await client.patch("/rounds/r-sprog", json={"languages": ["uk"], "translation_status": "reviewed"}, headers=operator)
        assert locked.status_code == 409, locked.text
        assert "languages can no longer change: the round is in_fieldwork" in locked.text and "translation_status" in locked.text
        assert (await client.patch("/rounds/r-sprog", json={"languages": ["uk", "pl"]}, headers=operator)).status_code == 200  # unchanged
