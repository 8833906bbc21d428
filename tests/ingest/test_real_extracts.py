"""Real-shaped extracts (issue #21) over HTTP against real PostgreSQL and a real broker.

The first test runs ingest as a uvicorn process, as ``make up`` does, with worker processes
preparing even these small files: Momentum- and Fasit-shaped exports load as delivered, a new
vendor header is accepted after one profile registration (no restart), and KL's operator sees
every delivery and job of the round. The others run the app in-process (one per module) and
cover the rules one at a time: visitation categories, future dates, data row numbers, dry runs,
refused replacements, the 422's advice, the readable mapping and profiles.
"""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from ingest_helpers import CORPUS, CSV, XLSX, citizens_of_round, deliveries_of_round, new_round, service_env_for, upload, wait_for_job
from corpus.make_real_extracts import (
    CITIZENS,
    EXPECTED_GROUPS,
    MIXED_EXPECTED_ERRORS,
    MIXED_EXPECTED_WARNINGS,
)
from services.ingest.config import IngestSettings
from services.ingest.main import create_app
from shared.infra import free_port
from shared.testing.fixtures import bearer, create_test_database, running_app, settings_from_env
from shared.testing.processes import ServiceProcess
from shared.testing.round import define_round

pytestmark = pytest.mark.timeout(240)

MOMENTUM = ("real_momentum_cp1252_title.csv", CSV, "momentum")
FASIT_CSV = ("real_fasit_utf8_bom_serial.csv", "text/csv; charset=utf-8", "fasit")
FASIT_XLSX = ("real_fasit_title_serial.xlsx", XLSX, "fasit")
# Every citizen of CITIZENS: (benefit, category) -> target group, as the report must count them.
EXPECTED_CLASSIFICATIONS = {
    ("Dagpenge", None, "dagpenge"),
    ("Sygedagpenge", None, "sygedagpenge"),
    ("Kontanthjælp", "jobparat", "job_og_uddannelsesparate"),
    ("Kontanthjælp", "aktivitetsparat", "aktivitetsparate"),
    ("Uddannelseshjælp", "uddannelsesparat", "job_og_uddannelsesparate"),
    ("Uddannelseshjælp", "aabenlyst_uddannelsesparat", "job_og_uddannelsesparate"),
    ("Uddannelseshjælp", "aktivitetsparat", "aktivitetsparate"),
    ("Ressourceforløbsydelse", "ressourceforloeb", "aktivitetsparate"),
    ("Ressourceforløbsydelse", "jobafklaringsforloeb", "jobafklaring"),
    ("Ledighedsydelse", None, "job_og_uddannelsesparate"),
}


def _classifications(report: dict) -> set[tuple]:
    assert all(c["citizens"] == 1 for c in report["classifications"]), report["classifications"]
    return {(c["ydelse"], c["visitationskategori"], c["maalgruppe"]) for c in report["classifications"]}


async def _upload_file(client, token, name, content_type, profile, *, round_id, kommunekode="101", **params) -> httpx.Response:
    return await upload(
        client, token, (CORPUS / name).read_bytes(), round_id=round_id, kommunekode=kommunekode,
        content_type=content_type, profile=profile, filename=name, **params,
    )


# --- the platform as make up runs it -------------------------------------------------------------


async def test_vendor_exports_load_as_delivered_through_the_running_service(
    postgres_admin_url, kafka_bootstrap, dev_issuer, data_keys, tmp_path
):
    database_url = await create_test_database(postgres_admin_url)
    env = {
        **service_env_for(database_url, kafka_bootstrap, f"t{uuid.uuid4().hex[:10]}.", dev_issuer, data_keys, tmp_path),
        # Worker processes prepare even these small files: a registered profile must reach them.
        "INGEST_WORKERS": "2",
        "INGEST_PARALLEL_MIN_BYTES": "0",
    }
    service = ServiceProcess("ingest", free_port(), env, log_file=tmp_path / "ingest.log").start()
    vendor = dev_issuer.mint("momentum-dev", ["extracts:write", "extracts:read"], ["101", "147", "151", "153"])
    operator = dev_issuer.mint("kl-operator", ["rounds:admin", "kommuner:all"], [])
    round_id = f"r-{uuid.uuid4().hex[:10]}"
    try:
        service.wait_healthy(90)
        async with httpx.AsyncClient(base_url=service.url, timeout=60) as client:
            for defined in (round_id, *(f"{round_id}-{k}" for k in ("101", "147", "151"))):
                await define_round(client, operator, defined)
            jobs = {}
            for kommunekode, (name, content_type, profile) in zip(("101", "147", "151"), (MOMENTUM, FASIT_CSV, FASIT_XLSX), strict=True):
                # Each municipality its own citizens: the same synthetic people in three files
                # would be cross-delivery duplicates, so each file goes to its own round.
                own_round = f"{round_id}-{kommunekode}"
                response = await _upload_file(client, vendor, name, content_type, profile, round_id=own_round, kommunekode=kommunekode)
                assert response.status_code == 202, response.text
                job = await wait_for_job(client, vendor, response.json()["job_id"])
                assert job["status"] == "succeeded", job
                assert job["progress"] == {"rows_read": 10, "rows_valid": 10, "rows_rejected": 0, "rows_excluded": 0}, name
                assert job["errors"] == [] and job["maalgrupper"] == EXPECTED_GROUPS, name
                assert _classifications(job) == EXPECTED_CLASSIFICATIONS, name
                delivery = await client.get(f"/deliveries/{job['delivery_id']}", headers=bearer(vendor))
                assert delivery.status_code == 200, delivery.text
                assert delivery.json()["maalgrupper"] == EXPECTED_GROUPS
                jobs[kommunekode] = job

            # A release with headers no profile knows: refused, with the fix ready to paste.
            new_headers = (CORPUS / "real_new_vendor_headers.csv").read_bytes()
            refused = await upload(client, vendor, new_headers, round_id=round_id, kommunekode="153", profile="momentum")
            assert refused.status_code == 422, refused.text
            advice = {a["column"]: a for a in refused.json()["detail"]["missing_columns"]}
            assert set(advice) == {"cpr", "overgangsdato"}
            assert advice["overgangsdato"]["closest_headers"][0] == "Ydelsesskift dato"
            # One registration over the API; the category header is registered in the same call.
            registration = advice["overgangsdato"]["fix"]["register_profile"]["body"]
            registration["name"] = "momentum-2024"
            registration["columns"] = {
                "overgangsdato": ["Ydelsesskift dato"], "cpr": ["Personident"], "visitationskategori": ["Borgerens målgruppekategori"],
            }
            registered = await client.post("/profiles", json=registration, headers=bearer(vendor))
            assert registered.status_code == 201, registered.text
            assert registered.json()["reference"] == "momentum-2024@1"
            response = await upload(client, vendor, new_headers, round_id=round_id, kommunekode="153", profile="momentum-2024")
            assert response.status_code == 202, response.text
            job = await wait_for_job(client, vendor, response.json()["job_id"])
            assert job["status"] == "succeeded" and job["profile"] == "momentum-2024@1", job
            assert job["progress"]["rows_valid"] == 10 and job["maalgrupper"] == EXPECTED_GROUPS

            # The operator sees every delivery and job of the round, and may read the jobs.
            listed = await client.get(f"/rounds/{round_id}-101/jobs", headers=bearer(operator))
            assert listed.status_code == 200, listed.text
            [summary] = listed.json()
            assert (summary["file_name"], summary["submitted_by"], summary["status"]) == (MOMENTUM[0], "momentum-dev", "succeeded")
            deliveries = await client.get(f"/rounds/{round_id}-101/deliveries", headers=bearer(operator))
            assert [d["delivery_id"] for d in deliveries.json()] == [jobs["101"]["delivery_id"]]
            assert deliveries.json()[0]["file_name"] == MOMENTUM[0]
            operator_view = await client.get(f"/jobs/{jobs['147']['job_id']}", headers=bearer(operator))
            assert operator_view.status_code == 200 and operator_view.json()["status"] == "succeeded"
            assert (await client.get(f"/rounds/{round_id}/jobs", headers=bearer(vendor))).status_code == 403
    finally:
        service.stop()
    assert await citizens_of_round(database_url, f"{round_id}-151") == len(CITIZENS)


# --- one app for the rules ---------------------------------------------------------------------


@pytest.fixture(scope="module")
async def stack(postgres_admin_url, kafka_bootstrap, dev_issuer, data_keys, tmp_path_factory):
    database_url = await create_test_database(postgres_admin_url)
    env = service_env_for(database_url, kafka_bootstrap, f"t{uuid.uuid4().hex[:10]}.", dev_issuer, data_keys, tmp_path_factory.mktemp("real"))
    app = create_app(settings_from_env(IngestSettings, env))
    async with running_app(app) as client:
        yield {
            "client": client,
            "db": database_url,
            "token": dev_issuer.mint("fasit-dev", ["extracts:write", "extracts:read"], ["101", "147"]),
            "operator": dev_issuer.mint("kl-operator", ["rounds:admin", "kommuner:all"], []),
            "reader": dev_issuer.mint("aarhus-bi", ["aggregates:read"], ["751"]),
        }


async def _job(stack, name, content_type=CSV, profile="standard", **params) -> dict:
    response = await _upload_file(stack["client"], stack["token"], name, content_type, profile, **params)
    assert response.status_code == 202, response.text
    return await wait_for_job(stack["client"], stack["token"], response.json()["job_id"])


async def test_bad_rows_name_data_row_line_column_and_never_a_cpr(stack):
    round_id = await new_round(stack)
    job = await _job(stack, "real_mixed_bad_rows.csv", round_id=round_id)
    assert job["status"] == "succeeded", job
    assert {e["data_row"]: e["column"] for e in job["errors"]} == MIXED_EXPECTED_ERRORS
    assert {w["data_row"]: w["column"] for w in job["warnings"]} == MIXED_EXPECTED_WARNINGS
    # A title row and the header above the data: line = data row + 2.
    assert all(issue["line"] == issue["data_row"] + 2 == issue["row"] for issue in job["errors"] + job["warnings"])
    errors = {e["data_row"]: e["message"] for e in job["errors"]}
    assert "has no visitation category" in errors[2] and "(column ydelse)" in errors[2]
    assert "the mapping does not know" in errors[3] and "Match 3" not in errors[3]
    assert "names the visitation category Jobparat" in errors[4] and "says Aktivitetsparat" in errors[4]
    assert "closest accepted names: Kontanthjælp" in errors[5] and "GET /maalgrupper" in errors[5]
    assert "after the day of the upload" in errors[6]
    warning = job["warnings"][0]["message"]
    assert "after the round's reference date 2023-08-01" in warning and "no duration" in warning
    assert job["progress"] == {"rows_read": 9, "rows_valid": 2, "rows_rejected": 6, "rows_excluded": 1}
    assert job["exclusions"] == {"transition_after_reference_date": 1}
    assert "3202661238" not in json.dumps(job) and "320266-1238" not in json.dumps(job)
    assert await citizens_of_round(stack["db"], round_id) == 2


async def test_the_v1_mapping_would_misclassify_jobafklaring_v2_does_not(stack):
    """The same rows as a JSON batch: v2 puts ressourceforløbsydelse + jobafklaringsforløb in
    jobafklaring; without the category it is a row error, not aktivitetsparate."""
    rows = [
        {"cpr": "0808711239", "ydelse": "Ressourceforløbsydelse", "visitationskategori": "Jobafklaringsforløb", "overgangsdato": "2022-08-01"},
        {"cpr": "0202661238", "ydelse": "Ressourceforløbsydelse", "overgangsdato": "2020-11-01"},
        {"cpr": "2306901233", "ydelse": "Kontanthjælp - jobparat", "overgangsdato": "2022-05-02"},  # v1's combined name
    ]
    response = await stack["client"].post(
        f"/rounds/{await new_round(stack)}/extracts/101", json={"reference_date": "2023-08-01", "rows": rows}, headers=bearer(stack["token"])
    )
    assert response.status_code == 201, response.text
    report = response.json()
    assert report["maalgrupper"] == {"jobafklaring": 1, "job_og_uddannelsesparate": 1}
    assert [(e["data_row"], e["column"]) for e in report["errors"]] == [(2, "visitationskategori")]
    delivery = await stack["client"].get(f"/deliveries/{report['delivery_id']}", headers=bearer(stack["token"]))
    assert delivery.status_code == 200 and delivery.json()["classifications"] == report["classifications"]


async def test_dry_run_reports_in_full_and_stores_nothing(stack):
    round_id = await new_round(stack)
    job = await _job(stack, MOMENTUM[0], profile="momentum", round_id=round_id, dry_run="true")
    assert job["status"] == "validated" and job["dry_run"] is True, job
    assert job["maalgrupper"] == EXPECTED_GROUPS and job["delivery_id"] is None
    rows = [{"cpr": "0503701231", "ydelse": "Dagpenge", "overgangsdato": "2022-01-03"}]
    batch = await stack["client"].post(
        f"/rounds/{round_id}/extracts/101", params={"dry_run": "true"},
        json={"reference_date": "2023-08-01", "rows": rows}, headers=bearer(stack["token"]),
    )
    assert batch.status_code == 200 and batch.json()["status"] == "validated" and batch.json()["delivery_id"] is None
    assert await deliveries_of_round(stack["db"], round_id) == []
    assert await citizens_of_round(stack["db"], round_id) == 0


async def test_a_delivery_that_would_wipe_the_frame_is_refused_unless_confirmed(stack):
    client, token = stack["client"], stack["token"]
    round_id = await new_round(stack)
    good = await _job(stack, MOMENTUM[0], profile="momentum", round_id=round_id)
    assert good["progress"]["rows_valid"] == 10
    header_only = (CORPUS / MOMENTUM[0]).read_bytes().split(b"\r\n")[:2]
    empty = await upload(client, token, b"\r\n".join(header_only) + b"\r\n", round_id=round_id, profile="momentum")
    assert empty.status_code == 409 and "would remove 10 citizens" in empty.json()["detail"], empty.text
    # Far fewer than before (3 of 10): refused after the job read it, nothing replaced.
    lines = (CORPUS / MOMENTUM[0]).read_bytes().split(b"\r\n")
    few = b"\r\n".join(lines[:5]) + b"\r\n"
    response = await upload(client, token, few, round_id=round_id, profile="momentum")
    job = await wait_for_job(client, token, response.json()["job_id"])
    assert job["status"] == "rejected" and "would remove 7 citizens" in job["error"], job
    assert await citizens_of_round(stack["db"], round_id) == 10
    # Confirmed, the replacement goes through.
    response = await upload(client, token, few, round_id=round_id, profile="momentum", confirm_replacement="true")
    job = await wait_for_job(client, token, response.json()["job_id"])
    assert job["status"] == "succeeded" and job["supersedes"] == good["delivery_id"]
    assert await citizens_of_round(stack["db"], round_id) == 3
    # A JSON batch is answered 409 at once.
    rows = [{"cpr": "0503701231", "ydelse": "Ukendt", "overgangsdato": "2022-01-03"}]
    batch = await client.post(f"/rounds/{round_id}/extracts/101", json={"reference_date": "2023-08-01", "rows": rows}, headers=bearer(token))
    assert batch.status_code == 409 and "would remove 3 citizens" in batch.json()["detail"]["message"]


async def test_a_one_off_column_map_and_profile_versions(stack):
    client, token = stack["client"], stack["token"]
    content = (CORPUS / "real_new_vendor_headers.csv").read_bytes()
    column_map = json.dumps({"cpr": "Personident", "overgangsdato": "Ydelsesskift dato", "visitationskategori": "Borgerens målgruppekategori"})
    response = await upload(client, token, content, round_id=await new_round(stack), column_map=column_map)
    job = await wait_for_job(client, token, response.json()["job_id"])
    assert job["status"] == "succeeded" and job["maalgrupper"] == EXPECTED_GROUPS, job
    bad = await upload(client, token, content, round_id=await new_round(stack), column_map='{"nosuchcolumn": "x"}')
    assert bad.status_code == 422 and "unknown column" in bad.json()["detail"]

    body = {"name": "fasit-lokal", "base": "fasit", "columns": {"overgangsdato": ["Skiftedato"]}}
    first = await client.post("/profiles", json=body, headers=bearer(token))
    second = await client.post("/profiles", json={**body, "columns": {"overgangsdato": ["Skiftedato", "Dato for ny ydelse"]}}, headers=bearer(token))
    assert (first.status_code, second.status_code) == (201, 201)
    assert second.json()["version"] == 2 and "Dato for ny ydelse" in second.json()["columns"]["overgangsdato"]
    one = await client.get("/profiles/fasit-lokal@1", headers=bearer(token))
    assert one.status_code == 200 and "Dato for ny ydelse" not in one.json()["columns"]["overgangsdato"]
    listed = {p["reference"] for p in (await client.get("/profiles", headers=bearer(token))).json()}
    assert {"standard", "momentum", "fasit", "fasit-lokal@2"} <= listed
    ambiguous = await client.post("/profiles", json={"name": "x", "columns": {"ydelse": ["Overgangsdato"]}}, headers=bearer(token))
    assert ambiguous.status_code == 422 and "ambiguous" in ambiguous.json()["detail"]
    builtin = await client.post("/profiles", json={"name": "fasit", "columns": {}}, headers=bearer(token))
    assert builtin.status_code == 422
    assert (await client.post("/profiles", json=body, headers=bearer(stack["reader"]))).status_code == 403
    assert (await client.get("/profiles/nosuch", headers=bearer(token))).status_code == 404


async def test_the_mapping_is_readable(stack):
    client = stack["client"]
    current = await client.get("/maalgrupper", headers=bearer(stack["reader"]))
    assert current.status_code == 200
    mapping = current.json()
    assert mapping["version"] == mapping["current_version"] == "v2"
    assert set(mapping["maalgrupper"]) == set(EXPECTED_GROUPS)
    benefits = {entry["ydelse"]: entry for entry in mapping["ydelser"]}
    assert benefits["Ressourceforløbsydelse"]["by_visitationskategori"]["jobafklaringsforloeb"] == "jobafklaring"
    assert mapping["duration_bands"] and mapping["age_bands"]
    old = await client.get("/maalgrupper", params={"version": "v1"}, headers=bearer(stack["reader"]))
    assert old.status_code == 200 and old.json()["version"] == "v1"
    assert (await client.get("/maalgrupper", params={"version": "v9"}, headers=bearer(stack["reader"]))).status_code == 404


async def test_operator_listings_need_the_admin_scopes(stack):
    client = stack["client"]
    round_id = await new_round(stack)
    await _job(stack, FASIT_CSV[0], content_type=FASIT_CSV[1], profile="fasit", round_id=round_id)
    for path in (f"/rounds/{round_id}/jobs", f"/rounds/{round_id}/deliveries"):
        assert (await client.get(path, headers=bearer(stack["token"]))).status_code == 403
        response = await client.get(path, headers=bearer(stack["operator"]))
        assert response.status_code == 200 and len(response.json()) == 1
    deliveries = (await client.get(f"/rounds/{round_id}/deliveries", headers=bearer(stack["operator"]))).json()
    report = await client.get(f"/deliveries/{deliveries[0]['delivery_id']}", headers=bearer(stack["operator"]))
    assert report.status_code == 200 and report.json()["rows_valid"] == 10
    assert (await client.get(f"/deliveries/{uuid.uuid4()}", headers=bearer(stack["operator"]))).status_code == 404


async def test_health_and_metrics_answer(stack):
    health = await stack["client"].get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    metrics = await stack["client"].get("/metrics")
    assert metrics.status_code == 200 and "# TYPE" in metrics.text
