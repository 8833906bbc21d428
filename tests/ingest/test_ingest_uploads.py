"""Extract files over HTTP against real PostgreSQL and a real broker: the bad-extract corpus,
atomic re-delivery, cross-delivery duplicates, jobs and access control.

One app serves the whole module (starting one costs seconds); every case uses its own round, so
cases cannot see each other's rows. The last test checks, over everything the module published,
that no event belongs to a delivery that was not stored.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from pathlib import Path

import asyncpg
import pytest

from ingest_helpers import (
    CORPUS,
    CSV,
    REFERENCE_DATE,
    XLSX,
    all_events,
    citizens_of_round,
    deliveries_of_round,
    fetch,
    new_round,
    service_env_for,
    upload,
    upload_and_wait,
    wait_for_job,
    wait_outbox_empty,
)
from services.ingest.config import IngestSettings
from services.ingest.main import create_app
from services.ingest.partitions import drop_dead_partitions, partition_name
from services.ingest.service import round_lock_key
from shared.crypto import SealedContact, open_contact
from shared.events import PopulationReceived
from shared.testing.fixtures import bearer, create_test_database, running_app, settings_from_env

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module")
async def stack(postgres_admin_url, kafka_bootstrap, dev_issuer, data_keys, tmp_path_factory):
    database_url = await create_test_database(postgres_admin_url)
    topic_prefix = f"t{uuid.uuid4().hex[:10]}."
    tmp = tmp_path_factory.mktemp("ingest-uploads")
    env = service_env_for(database_url, kafka_bootstrap, topic_prefix, dev_issuer, data_keys, tmp)
    # Tiny batches and chunks, so even the small corpus files COPY and publish several times
    # before a late error: that is what "no partial rows" has to survive.
    settings = settings_from_env(IngestSettings, env, ingest_batch_rows=2, event_chunk_size=2)
    app = create_app(settings)
    async with running_app(app) as client:
        yield {
            "client": client,
            "db": database_url,
            "topic": f"{topic_prefix}population.received",
            "bootstrap": kafka_bootstrap,
            "settings": settings,
            "token": dev_issuer.mint("momentum-dev", ["extracts:write"], ["101", "147"]),
            "operator": dev_issuer.mint("kl-operator", ["rounds:admin", "kommuner:all"]),
            "data_keys": data_keys,
        }


async def assert_nothing_stored(stack, round_id: str) -> None:
    assert await deliveries_of_round(stack["db"], round_id) == []
    assert await citizens_of_round(stack["db"], round_id) == 0
    assert await orphan_citizen_tables(stack["db"]) == []


async def orphan_citizen_tables(database_url: str) -> list[str]:
    """Tables in ingest holding citizens of no stored delivery: what a failed or rejected delivery
    would leave behind if its loading table (services.ingest.partitions) outlived it."""
    rows = await fetch(
        database_url,
        """SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname = 'ingest' AND c.relkind IN ('r', 'p') AND c.relname ~ '^citizen_[0-9a-f]{32}$'
              AND NOT EXISTS (SELECT 1 FROM ingest.delivery d WHERE 'citizen_' || replace(d.id::text, '-', '') = c.relname)""",
    )
    return [row["relname"] for row in rows]


async def citizen_partitions(database_url: str) -> dict[str, str]:
    """The partitions of ingest.citizen: table name -> the delivery it is for."""
    rows = await fetch(
        database_url,
        """SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) AS bound FROM pg_inherits i
            JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'ingest.citizen'::regclass""",
    )
    return {row["relname"]: row["bound"] for row in rows}


# --- readable files ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("good_cp1252_semicolon.csv", CSV),
        ("good_utf8_bom_comma.csv", "text/csv; charset=utf-8"),
        ("good_latin1_tab.csv", "text/plain"),
        ("merged_header.xlsx", XLSX),
        ("merged_header.xlsx", "application/octet-stream"),  # the format is read from the content
    ],
)
async def test_good_files_in_every_encoding_and_layout_are_stored(stack, name, content_type):
    round_id = await new_round(stack)
    job = await upload_and_wait(
        stack["client"], stack["token"], (CORPUS / name).read_bytes(), round_id=round_id, content_type=content_type
    )
    assert job["status"] == "succeeded", job
    assert job["progress"] == {"rows_read": 4, "rows_valid": 4, "rows_rejected": 0, "rows_excluded": 0}
    assert job["maalgrupper"] == {"dagpenge": 1, "sygedagpenge": 1, "aktivitetsparate": 1, "jobafklaring": 1}
    assert job["mapping_version"] == "v2"
    assert await citizens_of_round(stack["db"], round_id) == 4
    [delivery] = await deliveries_of_round(stack["db"], round_id)
    assert delivery["id"] == uuid.UUID(job["delivery_id"]) and delivery["mapping_version"] == "v2"


async def test_multipart_upload_and_json_files(stack):
    client, token = stack["client"], stack["token"]
    round_id = await new_round(stack)
    response = await client.post(
        f"/rounds/{round_id}/extracts/101/files",
        params={"reference_date": "2023-08-01", "profile": "momentum"},
        files={"file": ("udtraek.csv", (CORPUS / "good_cp1252_semicolon.csv").read_bytes(), "text/csv")},
        headers=bearer(token),
    )
    assert response.status_code == 202, response.text
    assert response.headers["location"] == response.json()["status_url"]
    job = await wait_for_job(client, token, response.json()["job_id"])
    assert job["status"] == "succeeded" and job["progress"]["rows_valid"] == 4

    ndjson = (
        b'{"cpr": "010190-1235", "ydelse": "Dagpenge", "overgangsdato": "2022-01-01", "seneste_samtale": null,'
        b' "forloeb_afsluttet": false, "telefon": "12345678", "passiv": false}\n'
        b'{"cpr": "020285-2346", "ydelse": "Sygedagpenge", "overgangsdato": "2023-03-01", "seneste_samtale": null,'
        b' "forloeb_afsluttet": false, "telefon": null, "passiv": true}\n'
    )
    job = await upload_and_wait(client, token, ndjson, round_id=await new_round(stack), content_type="application/x-ndjson")
    assert job["status"] == "succeeded", job
    assert job["progress"]["rows_valid"] == 1 and job["exclusions"] == {"passive": 1}


# --- files refused at once -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "status", "says"),
    [
        ("empty.csv", 400, "empty"),
        ("blank_lines.csv", 422, "no header line"),
        ("wrong_delimiter_pipe.csv", 422, "no header row found"),
        ("missing_columns.csv", 422, "missing required columns"),
        ("binary_garbage.csv", 422, "binary"),
        ("truncated.xlsx", 422, "not a readable XLSX workbook"),
        ("zip_not_workbook.xlsx", 422, "not a readable XLSX workbook"),
        ("legacy.xls", 422, "97-2003"),
    ],
)
async def test_unreadable_files_are_refused_at_once_and_store_nothing(stack, name, status, says):
    round_id = await new_round(stack)
    response = await upload(stack["client"], stack["token"], (CORPUS / name).read_bytes(), round_id=round_id)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert says in (detail["message"] if isinstance(detail, dict) else detail)
    await assert_nothing_stored(stack, round_id)
    assert list(Path(stack["settings"].upload_path).glob("*")) == []  # the clear-text upload is gone


async def test_missing_columns_are_named(stack):
    response = await upload(stack["client"], stack["token"], (CORPUS / "missing_columns.csv").read_bytes(), round_id=await new_round(stack))
    detail = response.json()["detail"]
    for column in ("seneste_samtale", "forloeb_afsluttet", "telefon", "passiv"):
        assert column in detail["message"]
    assert [advice["column"] for advice in detail["missing_columns"]] == ["seneste_samtale", "forloeb_afsluttet", "telefon", "passiv"]


async def test_bad_requests(stack):
    client, token = stack["client"], stack["token"]
    good = (CORPUS / "good_cp1252_semicolon.csv").read_bytes()
    assert (await upload(client, token, good, round_id=await new_round(stack), content_type="image/png")).status_code == 415
    assert (await upload(client, token, good, round_id=await new_round(stack), profile="nosuchvendor")).status_code == 422
    response = await client.post(f"/rounds/{await new_round(stack)}/extracts/101/files", content=good, headers={**bearer(token), "Content-Type": CSV})
    assert response.status_code == 422  # reference_date is required
    response = await client.post(
        f"/rounds/{await new_round(stack)}/extracts/101/files",
        params={"reference_date": "2023-08-01"},
        files={"wrong": ("x.csv", good, "text/csv")},
        headers=bearer(token),
    )
    assert response.status_code == 422 and "'file'" in response.json()["detail"]


# --- row errors ---------------------------------------------------------------------------------------


async def test_invalid_and_substitute_cprs_are_reported_per_row_masked(stack):
    round_id = await new_round(stack)
    content = (CORPUS / "invalid_cprs.csv").read_bytes()
    job = await upload_and_wait(stack["client"], stack["token"], content, round_id=round_id)
    assert job["status"] == "succeeded", job
    errors = {(e["row"], e["column"]): e["message"] for e in job["errors"]}
    assert set(errors) == {(5, "cpr"), (6, "cpr"), (7, "cpr"), (8, "cpr"), (9, "cpr"), (10, "overgangsdato"), (11, "ydelse")}
    assert "erstatningspersonnummer" in errors[(6, "cpr")] and "710190-XXXX" in errors[(6, "cpr")]
    assert "valid birth date" in errors[(5, "cpr")]
    assert "missing" in errors[(9, "cpr")]
    assert "mapping v2" in errors[(11, "ydelse")] and "closest accepted names" in errors[(11, "ydelse")]
    assert [(w["row"], w["column"]) for w in job["warnings"]] == [(12, "telefon")]  # a bad phone costs only the SMS
    assert job["progress"] == {"rows_read": 11, "rows_valid": 4, "rows_rejected": 7, "rows_excluded": 0}
    text = str(job)
    for secret in ("7101901234", "0101901235", "1234", "Erstatning", "Ugyldig"):
        assert f"-{secret}" not in text and secret not in text.replace("XXXX", "")
    assert await citizens_of_round(stack["db"], round_id) == 4


async def test_reject_all_stores_nothing(stack):
    round_id = await new_round(stack)
    content = (CORPUS / "invalid_cprs.csv").read_bytes()
    job = await upload_and_wait(stack["client"], stack["token"], content, round_id=round_id, policy="reject_all")
    assert job["status"] == "rejected"
    assert "reject_all" in job["error"] and job["errors_total"] == 7
    assert job["delivery_id"] is None
    await assert_nothing_stored(stack, round_id)


async def test_duplicates_within_a_delivery(stack):
    round_id = await new_round(stack)
    job = await upload_and_wait(stack["client"], stack["token"], (CORPUS / "duplicates.csv").read_bytes(), round_id=round_id)
    assert job["status"] == "succeeded"
    assert [(e["row"], e["column"]) for e in job["errors"]] == [(6, "cpr"), (7, "cpr")]
    assert all("first in row 2" in e["message"] and "010190-XXXX" in e["message"] for e in job["errors"])
    assert await citizens_of_round(stack["db"], round_id) == 4


async def test_a_file_that_breaks_midway_leaves_no_partial_rows(stack):
    round_id = await new_round(stack)
    content = (CORPUS / "unterminated_quote.csv").read_bytes()
    job = await upload_and_wait(stack["client"], stack["token"], content, round_id=round_id)
    assert job["status"] == "failed"
    assert "malformed CSV" in job["error"]
    assert job["delivery_id"] is None
    await assert_nothing_stored(stack, round_id)


async def test_a_200_mb_file_is_streamed_and_its_error_found(stack, tmp_path):
    """~200 MB generated by repeating a block: the header lacks a column, so the upload is
    refused with 422 after streaming to disk, and this process's memory does not grow with it."""
    block = ("010190-1235;Dagpenge;01-01-2022;;nej;12345678;Testperson Testesen\r\n" * 2000).encode()
    path = tmp_path / "big.csv"
    with open(path, "wb") as file:
        file.write(b"CPR-nummer;Ydelse;Overgangsdato;Seneste samtale;Forl\xc3\xb8b afsluttet;Telefon;Navn\r\n")
        while file.tell() < 200 * 1024 * 1024:
            file.write(block)

    async def stream():
        with open(path, "rb") as file:
            while chunk := file.read(1024 * 1024):
                yield chunk

    before = _peak_rss_mb()
    round_id = await new_round(stack)
    response = await upload(stack["client"], stack["token"], stream(), round_id=round_id)
    assert response.status_code == 422, response.text
    assert "passiv" in response.json()["detail"]["message"]
    assert _peak_rss_mb() - before < 100  # the file is ~200 MB; it never sat in memory
    await assert_nothing_stored(stack, round_id)


async def test_upload_over_the_size_limit_is_refused(stack):
    settings = stack["settings"]
    limit = settings.max_upload_bytes
    settings.max_upload_bytes = 1000
    try:
        response = await upload(stack["client"], stack["token"], b"x" * 5000, round_id=await new_round(stack))
    finally:
        settings.max_upload_bytes = limit
    assert response.status_code == 413


# --- re-delivery and cross-delivery duplicates ------------------------------------------------------------


async def test_redelivery_replaces_the_previous_delivery_atomically(stack):
    client, token, db = stack["client"], stack["token"], stack["db"]
    round_id = await new_round(stack)
    first = await upload_and_wait(client, token, (CORPUS / "good_cp1252_semicolon.csv").read_bytes(), round_id=round_id)
    corrected = await upload_and_wait(client, token, (CORPUS / "duplicates.csv").read_bytes(), round_id=round_id)
    assert first["status"] == corrected["status"] == "succeeded"
    assert corrected["supersedes"] == first["delivery_id"]

    deliveries = {str(d["id"]): d for d in await deliveries_of_round(db, round_id)}
    assert deliveries[first["delivery_id"]]["status"] == "superseded"
    assert deliveries[corrected["delivery_id"]]["status"] == "accepted"
    per_delivery = await fetch(db, "SELECT delivery_id, count(*) AS n FROM ingest.citizen GROUP BY delivery_id")
    counts = {str(r["delivery_id"]): r["n"] for r in per_delivery}
    assert first["delivery_id"] not in counts and counts[corrected["delivery_id"]] == 4
    # Each delivery is its own partition of ingest.citizen, bound to its id; the superseded one
    # was emptied, and its rows are nowhere else.
    partitions = await citizen_partitions(db)
    first_partition = partition_name(uuid.UUID(first["delivery_id"]))
    for delivery_id in (first["delivery_id"], corrected["delivery_id"]):
        name = partition_name(uuid.UUID(delivery_id))
        assert partitions[name] == f"FOR VALUES IN ('{delivery_id}')"
    first_table = f"ingest.{first_partition}"
    assert (await fetch(db, f"SELECT count(*) AS n FROM {first_table}"))[0]["n"] == 0
    # The new partition's primary key was built after the load and adopted by the parent's.
    indexes = await fetch(
        db, "SELECT indexrelid::regclass::text AS name FROM pg_index WHERE indrelid = $1::regclass AND indisprimary",
        f"ingest.{partition_name(uuid.UUID(corrected['delivery_id']))}",
    )
    assert len(indexes) == 1

    # A rejected correction leaves the accepted delivery as it was.
    rejected = await upload_and_wait(
        client, token, (CORPUS / "invalid_cprs.csv").read_bytes(), round_id=round_id, policy="reject_all"
    )
    assert rejected["status"] == "rejected"
    assert {str(d["id"]): d["status"] for d in await deliveries_of_round(db, round_id)}[corrected["delivery_id"]] == "accepted"
    assert await orphan_citizen_tables(db) == []

    # The cleanup drops the superseded delivery's emptied partition, and only that one of the round.
    connection = await asyncpg.connect(db)
    try:
        dropped = await drop_dead_partitions(connection)
    finally:
        await connection.close()
    assert first_partition in dropped
    partitions = await citizen_partitions(db)
    assert first_partition not in partitions
    assert partition_name(uuid.UUID(corrected["delivery_id"])) in partitions
    assert await citizens_of_round(db, round_id) == 4

    await wait_outbox_empty(db)
    events = [e.payload() for e in await all_events(stack["bootstrap"], stack["topic"])]
    mine = [p for p in events if isinstance(p, PopulationReceived) and p.round_id == round_id]
    by_delivery: dict[str, list[PopulationReceived]] = {}
    for payload in mine:
        by_delivery.setdefault(str(payload.delivery_id), []).append(payload)
    assert set(by_delivery) == {first["delivery_id"], corrected["delivery_id"]}
    second = sorted(by_delivery[corrected["delivery_id"]], key=lambda p: p.chunk_no)
    assert all(str(p.supersedes) == first["delivery_id"] for p in second)
    assert [p.chunk_no for p in second] == [0, 1] and second[-1].final and second[-1].person_count == 4
    assert not second[0].final and second[-1].chunk_count == 2


async def test_the_same_citizen_from_two_municipalities_is_an_error_on_the_later_delivery(stack):
    client, token = stack["client"], stack["token"]
    round_id = await new_round(stack)
    content = (CORPUS / "good_cp1252_semicolon.csv").read_bytes()
    first = await upload_and_wait(client, token, content, round_id=round_id, kommunekode="101")
    later = await upload_and_wait(client, token, content, round_id=round_id, kommunekode="147")
    assert first["progress"]["rows_valid"] == 4
    # Left with no valid citizens, the later delivery is refused (domain.replacement), its errors reported.
    assert later["status"] == "rejected" and "no valid citizens" in later["error"]
    assert later["progress"]["rows_valid"] == 0 and later["progress"]["rows_rejected"] == 4
    assert all("another municipality" in e["message"] and "municipality 101" not in e["message"] for e in later["errors"])
    # The first municipality re-delivering its own citizens is not a conflict with itself.
    again = await upload_and_wait(client, token, content, round_id=round_id, kommunekode="101")
    assert again["progress"]["rows_valid"] == 4


async def test_cross_delivery_duplicates_are_found_in_every_other_municipalitys_delivery(stack, dev_issuer):
    """Citizens spread over two earlier deliveries (two partitions); the third municipality's
    file mixes citizens of both with a new one: exactly those two rows are errors."""
    client, token, db = stack["client"], stack["token"], stack["db"]
    round_id = await new_round(stack)
    header, a, b, c, d = (CORPUS / "good_cp1252_semicolon.csv").read_bytes().splitlines(keepends=True)[:5]
    assert (await upload_and_wait(client, token, header + a + b, round_id=round_id, kommunekode="101"))["status"] == "succeeded"
    assert (await upload_and_wait(client, token, header + c, round_id=round_id, kommunekode="147"))["status"] == "succeeded"
    third = dev_issuer.mint("momentum-dev", ["extracts:write"], ["151"])
    later = await upload_and_wait(client, third, header + a + c + d, round_id=round_id, kommunekode="151")
    assert later["status"] == "succeeded"
    assert later["progress"]["rows_valid"] == 1 and later["progress"]["rows_rejected"] == 2
    assert [(e["row"], e["column"]) for e in later["errors"]] == [(2, "cpr"), (3, "cpr")]
    assert await citizens_of_round(db, round_id) == 4


# --- closed rounds -------------------------------------------------------------------------------------------


def operator_token(dev_issuer) -> str:
    return dev_issuer.mint("kl-operator", ["rounds:admin", "kommuner:all"])


async def holding_round_lock(database_url: str, round_id: str) -> asyncpg.Connection:
    """A connection holding the round's delivery lock, as a delivery in flight does."""
    connection = await asyncpg.connect(database_url)
    await connection.execute("BEGIN")
    await connection.execute("SELECT pg_advisory_xact_lock($1)", round_lock_key(round_id))
    return connection


async def test_a_closed_round_takes_no_more_deliveries(stack, dev_issuer):
    """Its identifiers are purged once, on the clock from the close: a later delivery would
    outlive that purge, so it is refused with what is wrong, as a file or as a JSON batch."""
    client, token, db = stack["client"], stack["token"], stack["db"]
    round_id = await new_round(stack)
    content = (CORPUS / "good_cp1252_semicolon.csv").read_bytes()
    assert (await upload_and_wait(client, token, content, round_id=round_id))["status"] == "succeeded"
    closed = await client.post(f"/rounds/{round_id}/close", json={}, headers=bearer(operator_token(dev_issuer)))
    assert closed.status_code == 201, closed.text

    refused = await upload(client, token, content, round_id=round_id, kommunekode="147")
    assert refused.status_code == 409 and f"round {round_id} was closed" in refused.json()["detail"]
    batch = await client.post(
        f"/rounds/{round_id}/extracts/101",
        json={"reference_date": REFERENCE_DATE, "rows": [{"cpr": "010190-1234", "ydelse": "Dagpenge", "overgangsdato": "2022-01-01"}]},
        headers=bearer(token),
    )
    assert batch.status_code == 409 and "takes no more deliveries" in batch.json()["detail"]
    assert [d["status"] for d in await deliveries_of_round(db, round_id)] == ["accepted"]
    assert await citizens_of_round(db, round_id) == 4
    assert (await fetch(db, "SELECT count(*) AS n FROM ingest.extract_job WHERE round_id = $1", round_id))[0]["n"] == 1
    assert await orphan_citizen_tables(db) == []


async def test_a_job_whose_round_closes_before_it_stores_is_refused(stack):
    """The upload was accepted while the round was open; the close commits while the job waits
    for the round's lock: the job sees it, fails saying so, and stores nothing."""
    client, token, db = stack["client"], stack["token"], stack["db"]
    round_id = await new_round(stack)
    lock = await holding_round_lock(db, round_id)
    try:
        accepted = await upload(client, token, (CORPUS / "good_cp1252_semicolon.csv").read_bytes(), round_id=round_id)
        assert accepted.status_code == 202, accepted.text
        await fetch(
            db, "INSERT INTO ingest.round_closure (round_id, closed_at, closed_by, purge_after) VALUES ($1, now(), 'test', now())", round_id
        )
    finally:
        await lock.execute("COMMIT")
        await lock.close()
    job = await wait_for_job(client, token, accepted.json()["job_id"])
    assert job["status"] == "failed" and "takes no more deliveries" in job["error"]
    await assert_nothing_stored(stack, round_id)


async def test_closing_a_round_waits_for_a_delivery_in_flight(stack, dev_issuer):
    """A delivery holds the round's lock for its whole transaction; the close takes it too, so
    a delivery either commits before the close or sees it (never one after the close)."""
    client, db = stack["client"], stack["db"]
    round_id = await new_round(stack)
    lock = await holding_round_lock(db, round_id)
    try:
        closing = asyncio.create_task(client.post(f"/rounds/{round_id}/close", json={}, headers=bearer(operator_token(dev_issuer))))
        await asyncio.sleep(1.0)
        assert not closing.done()
        assert (await fetch(db, "SELECT count(*) AS n FROM ingest.round_closure WHERE round_id = $1", round_id))[0]["n"] == 0
    finally:
        await lock.execute("COMMIT")
        await lock.close()
    assert (await closing).status_code == 201


# --- access -----------------------------------------------------------------------------------------------


async def test_access_control(stack, dev_issuer):
    client = stack["client"]
    content = (CORPUS / "good_cp1252_semicolon.csv").read_bytes()
    other = dev_issuer.mint("fasit-dev", ["extracts:write"], ["461"])
    assert (await upload(client, other, content, round_id=await new_round(stack))).status_code == 403
    reader = dev_issuer.mint("aarhus-bi", ["aggregates:read"], ["101"])
    assert (await upload(client, reader, content, round_id=await new_round(stack))).status_code == 403
    assert (await upload(client, None, content, round_id=await new_round(stack))).status_code == 401

    accepted = await upload(client, stack["token"], content, round_id=await new_round(stack))
    job_url = f"/jobs/{accepted.json()['job_id']}"
    await wait_for_job(client, stack["token"], accepted.json()["job_id"])
    # Another municipality's vendor is told what an unknown job id tells: nothing.
    other_job = await client.get(job_url, headers=bearer(other))
    assert (other_job.status_code, other_job.json()) == (404, {"detail": "no such job"})
    assert (await client.get(job_url, headers=bearer(reader))).status_code == 403  # no extracts scope
    assert (await client.get(job_url)).status_code == 401
    assert (await client.get(f"/jobs/{uuid.uuid4()}", headers=bearer(stack["token"]))).status_code == 404


# --- last: over everything this module published -------------------------------------------------------------


async def test_every_event_belongs_to_a_stored_delivery_and_carries_no_personal_data(stack):
    db = stack["db"]
    await wait_outbox_empty(db)
    envelopes = await all_events(stack["bootstrap"], stack["topic"])
    assert envelopes
    stored = {str(r["id"]) for r in await fetch(db, "SELECT id FROM ingest.delivery")}
    keyring = {k: base64.b64decode(v) for k, v in json.loads(stack["data_keys"]["CONTACT_KEYS"]).items()}
    for envelope in envelopes:
        payload = envelope.payload()
        assert str(payload.delivery_id) in stored  # nothing from a failed or rejected delivery
        raw = envelope.model_dump_json()
        for clear in ("0101901235", "010190-1235", "Søren", "12345678", "Testperson"):
            assert clear not in raw
        assert '"contact"' not in raw  # contacts stay in ingest until the citizen is sampled
    # Every stored citizen's sealed contact opens for dispatch, bound to its round and pseudonym.
    stored_contacts = await fetch(
        db,
        "SELECT d.round_id, c.pseudonym, c.contact_sealed, c.contact_key_id FROM ingest.citizen c "
        "JOIN ingest.delivery d ON d.id = c.delivery_id",
    )
    assert stored_contacts
    for row in stored_contacts:
        sealed = SealedContact(
            key_id=row["contact_key_id"],
            nonce=base64.b64encode(row["contact_sealed"][:12]).decode(),
            ciphertext=base64.b64encode(row["contact_sealed"][12:]).decode(),
        )
        contact = open_contact(sealed, round_id=row["round_id"], pseudonym=row["pseudonym"], keyring=keyring)
        assert len(contact.cpr) == 10
    orphans = await fetch(db, "SELECT count(*) AS n FROM ingest.citizen c LEFT JOIN ingest.delivery d ON d.id = c.delivery_id WHERE d.id IS NULL")
    assert orphans[0]["n"] == 0
    assert list(Path(stack["settings"].upload_path).glob("*")) == []  # no clear-text upload left behind


def _peak_rss_mb() -> float:
    with open(f"/proc/{os.getpid()}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


async def test_a_four_digit_kommunekode_in_the_path_is_the_same_municipality(stack):
    """Registers and many exports write 0101: the upload takes it, stores 101 and shows 101."""
    round_id = await new_round(stack)
    job = await upload_and_wait(
        stack["client"], stack["token"], (CORPUS / "good_cp1252_semicolon.csv").read_bytes(), round_id=round_id,
        kommunekode="0101",
    )
    assert job["status"] == "succeeded", job
    [delivery] = await deliveries_of_round(stack["db"], round_id)
    assert delivery["kommunekode"] == "101"
    assert job["kommunekode"] == "101"
    # a 4-digit code that is no kommunekode is a 422 naming the parameter
    response = await upload(stack["client"], stack["token"], b"x", round_id=round_id, kommunekode="1081")
    assert response.status_code == 422 and "kommunekode" in response.text
    # and the municipality's access rule holds for the 4-digit form too
    response = await upload(stack["client"], stack["token"], b"x", round_id=round_id, kommunekode="0751")
    assert response.status_code == 403


async def test_the_upload_body_documented_in_openapi_is_accepted_as_it_stands(stack):
    """A vendor reads the upload's layout from /openapi.json: its CSV example is a valid extract."""
    spec = (await stack["client"].get("/openapi.json")).json()
    body = spec["paths"]["/rounds/{round_id}/extracts/{kommunekode}/files"]["post"]["requestBody"]
    assert {"text/csv", "application/json", "multipart/form-data"} <= set(body["content"]) and body["description"]
    example = body["content"]["text/csv"]["example"]
    round_id = await new_round(stack)
    job = await upload_and_wait(stack["client"], stack["token"], example.encode(), round_id=round_id, content_type=CSV)
    assert job["status"] == "succeeded", job
    assert job["progress"]["rows_valid"] == example.count("\n") - 1
