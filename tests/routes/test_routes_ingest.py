"""Ingest's delivery report read back over HTTP (GET /deliveries/{delivery_id}): the report a
delivery got, and once a corrected delivery replaces it, marked superseded."""

from __future__ import annotations

from services.ingest.config import IngestSettings
from services.ingest.main import create_app
from shared.testing.fixtures import bearer, running_app, settings_from_env

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
