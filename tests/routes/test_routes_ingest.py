"""Ingest's delivery report read back over HTTP (GET /deliveries/{delivery_id}): the report a
delivery got, and once a corrected delivery replaces it, marked superseded."""

from __future__ import annotations

import uuid

from services.ingest.config import IngestSettings
from services.ingest.main import create_app
from shared.testing.fixtures import bearer, running_app, settings_from_env
from shared.testing.round import define_round

ROWS = [
    {"cpr": "010190-1234", "ydelse": "Dagpenge", "overgangsdato": "2022-01-01"},
    {"cpr": "020285-2345", "ydelse": "Sygedagpenge", "overgangsdato": "2023-03-01"},
    {"cpr": "320190-1234", "ydelse": "Dagpenge", "overgangsdato": "2022-01-01"},
]


async def test_a_delivery_report_is_read_back_and_marked_superseded(service_env, dev_issuer):
    app = create_app(settings_from_env(IngestSettings, service_env))
    uploader = bearer(dev_issuer.mint("momentum-dev", ["extracts:write"], ["101"]))
    reader = bearer(dev_issuer.mint("aarhus-reader", ["extracts:read"], ["101"]))
    async with running_app(app) as client:
        await define_round(client, dev_issuer.mint("kl-operator", ["rounds:admin", "kommuner:all"]), "r-read")
        posted = await client.post("/rounds/r-read/extracts/101", json={"reference_date": "2023-08-01", "rows": ROWS}, headers=uploader)
        assert posted.status_code == 201, posted.text
        first = posted.json()

        read = await client.get(f"/deliveries/{first['delivery_id']}", headers=reader)
        assert read.status_code == 200, read.text
        report = read.json()
        assert report["delivery_id"] == first["delivery_id"]
        assert (report["round_id"], report["kommunekode"], report["status"]) == ("r-read", "101", "accepted")
        assert (report["rows_read"], report["rows_valid"], report["rows_rejected"]) == (3, 2, 1)
        assert [(e["row"], e["column"]) for e in report["errors"]] == [(3, "cpr")]
        assert "320190-1234" not in read.text  # the CPR is never echoed in full

        # Another municipality's reader gets the answer an unknown id gets: nothing tells it that
        # the delivery (or its job) exists, or whose it is.
        odense = bearer(dev_issuer.mint("odense-reader", ["extracts:read"], ["461"]))
        unknown = await client.get(f"/deliveries/{uuid.uuid4()}", headers=odense)
        other = await client.get(f"/deliveries/{first['delivery_id']}", headers=odense)
        assert (other.status_code, other.json()) == (unknown.status_code, unknown.json()) == (404, {"detail": "no such delivery"})

        corrected = await client.post(
            "/rounds/r-read/extracts/101", json={"reference_date": "2023-08-01", "rows": ROWS[:2]}, headers=uploader
        )
        assert corrected.status_code == 201, corrected.text
        second = corrected.json()
        assert second["supersedes"] == first["delivery_id"]

        old = (await client.get(f"/deliveries/{first['delivery_id']}", headers=reader)).json()
        new = (await client.get(f"/deliveries/{second['delivery_id']}", headers=reader)).json()
        assert old["status"] == "superseded" and old["rows_valid"] == 2
        assert (new["status"], new["rows_read"], new["rows_valid"], new["errors"]) == ("accepted", 2, 2, [])


async def test_the_operator_runs_a_round_through_the_running_service(service_env, dev_issuer, kafka_bootstrap, tmp_path):
    """The operator's user path, on ingest as a process (as make up runs it): define the round,
    list and read it, edit it, vendors deliver, sampling's draw arrives, confirm the send dates,
    end fieldwork early, close; each answer is the round as it then is."""
    from datetime import UTC, datetime, timedelta

    import httpx

    from shared.events import SampleDrawn
    from shared.infra import free_port
    from shared.testing.fixtures import publish_events
    from shared.testing.processes import ServiceProcess
    from shared.testing.round import round_body, wait_for

    operator = bearer(dev_issuer.mint("kl-operator", ["rounds:admin", "kommuner:all"]))
    uploader = bearer(dev_issuer.mint("momentum-dev", ["extracts:write"], ["101"]))
    env = {**service_env, "ROUND_CLOCK_INTERVAL_SECONDS": "0.2", "INGEST_PREWARM_WORKERS": "false"}
    service = ServiceProcess("ingest", free_port(), env, log_file=tmp_path / "ingest.log").start()
    try:
        service.wait_healthy(90)
        with httpx.Client(base_url=service.url, timeout=30) as client:
            created = client.post("/rounds", json=round_body("r-op", kommuner=["101"], delivery_deadline=None), headers=operator)
            assert created.status_code == 201, created.text
            assert [r["round_id"] for r in client.get("/rounds", headers=operator).json()] == ["r-op"]
            edited = client.patch("/rounds/r-op", json={"questionnaire_version": "2026.2"}, headers=operator)
            assert edited.status_code == 200 and edited.json()["revision"] == 2
            delivered = client.post("/rounds/r-op/extracts/101", json={"reference_date": "2023-08-01", "rows": ROWS[:2]}, headers=uploader)
            assert delivered.status_code == 201, delivered.text
            assert client.get("/rounds/r-op", headers=operator).json()["phase"] == "collecting_extracts"

            draw = SampleDrawn(round_id="r-op", kommunekode="101", draw_id=uuid.uuid4(), seed=1, chunk_no=0, final=True, chunk_count=1, persons=[])
            await publish_events(kafka_bootstrap, service_env["KAFKA_TOPIC_PREFIX"], [draw], source="sampling")
            wait_for(lambda: client.get("/rounds/r-op", headers=operator).json()["phase"] == "sample_drawn", 30, "the draw at ingest")

            now = datetime.now(UTC)
            dates = {"invitation_at": (now + timedelta(hours=1)).isoformat(), "fieldwork_ends_at": (now + timedelta(days=14)).isoformat()}
            scheduled = client.post("/rounds/r-op/schedule", json=dates, headers=operator)
            assert scheduled.status_code == 200, scheduled.text
            assert scheduled.json()["phase"] == "fieldwork_scheduled"
            ended = client.post("/rounds/r-op/end-fieldwork", headers=operator)
            assert ended.status_code == 200, ended.text
            # Ended before the invitation: no invitation and no reminder remain to be sent.
            assert (ended.json()["phase"], ended.json()["invitation_at"], ended.json()["reminders_at"]) == ("fieldwork_ended", None, [])
            closed = client.post("/rounds/r-op/close", json={}, headers=operator)
            assert closed.status_code == 201, closed.text
            assert client.get("/rounds/r-op", headers=operator).json()["phase"] == "closed"
    finally:
        service.stop()
