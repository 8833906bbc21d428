"""Ingest's privacy coordination in-process: closing rounds, ingest's own purge, erasure and
objection requests, the audit log and CPR key rotation (issue 10). The five-service path is in
tests/e2e/test_privacy.py."""

from __future__ import annotations

import asyncio
import base64
import os

import asyncpg
import pytest

from ingest_helpers import ensure_round
from services.ingest.config import IngestSettings
from services.ingest.main import create_app
from services.ingest.partitions import drop_dead_partitions, partition_name
from services.ingest.pseudonymisation import decrypt_cpr
from shared.testing.fixtures import bearer, running_app, settings_from_env

ROWS = [
    {"cpr": "010190-1234", "ydelse": "Dagpenge", "overgangsdato": "2022-01-01", "telefon": "+4512345678", "navn": "Test Person"},
    {"cpr": "020285-2345", "ydelse": "Sygedagpenge", "overgangsdato": "2023-03-01"},
    {"cpr": "050592-2217", "ydelse": "Dagpenge", "overgangsdato": "2021-01-01"},
]


def _operator(dev_issuer) -> str:
    return dev_issuer.mint("kl-operator", ["rounds:admin", "kommuner:all"])


async def _deliver(client, dev_issuer, round_id: str, rows=ROWS):
    await ensure_round(client, dev_issuer, round_id)
    token = dev_issuer.mint("momentum-dev", ["extracts:write"], ["101"])
    response = await client.post(
        f"/rounds/{round_id}/extracts/101", json={"reference_date": "2023-08-01", "rows": rows}, headers=bearer(token)
    )
    assert response.status_code == 201, response.text
    return response.json()


async def _wait(check, timeout=20.0):
    async with asyncio.timeout(timeout):
        while not (result := await check()):
            await asyncio.sleep(0.1)
    return result


async def test_closing_a_round_purges_ingest_and_records_who_did_it(service_env, dev_issuer, database_url):
    app = create_app(settings_from_env(IngestSettings, service_env))
    async with running_app(app) as client:
        await _deliver(client, dev_issuer, "r-close")
        await _deliver(client, dev_issuer, "r-open")
        operator = _operator(dev_issuer)

        response = await client.post("/rounds/r-close/close", json={"retention_days": 30}, headers=bearer(operator))
        assert response.status_code == 201, response.text
        status = response.json()
        assert status["purge_requested_at"] is None and status["waiting_for"] == ["ingest", "sampling", "dispatch", "responses", "analytics"]
        again = await client.post("/rounds/r-close/close", json={}, headers=bearer(operator))
        assert again.status_code == 409

        conn = await asyncpg.connect(database_url)
        try:
            # Not due yet: nothing is purged.
            assert await conn.fetchval("SELECT count(*) FROM ingest.citizen") == 6
            ids = dict(await conn.fetch("SELECT round_id, id FROM ingest.delivery"))
            filenode = f"SELECT pg_relation_filenode('ingest.{partition_name(ids['r-close'])}')"
            before = await conn.fetchval(filenode)
            # Let the clock run out, as if 30 days had passed.
            await conn.execute("UPDATE ingest.round_closure SET purge_after = now() - interval '1 second'")

            async def ingest_receipt():
                r = await client.get("/rounds/r-close/retention", headers=bearer(operator))
                return r.json() if any(x["service"] == "ingest" for x in r.json()["receipts"]) else None

            status = await _wait(ingest_receipt)
            receipt = next(x for x in status["receipts"] if x["service"] == "ingest")
            assert receipt["verified"] and receipt["removed"]["citizen"] == 3
            assert not status["complete"]  # the other four services are not running here
            counts = dict(
                await conn.fetch(
                    "SELECT d.round_id, count(c.*) FROM ingest.delivery d LEFT JOIN ingest.citizen c ON c.delivery_id = d.id GROUP BY 1"
                )
            )
            assert counts == {"r-close": 0, "r-open": 3}
            # Emptied at once (TRUNCATE: a new file), not row by row.
            assert await conn.fetchval(filenode) != before
            # The purged round's emptied partition is dropped; the open round's stays.
            assert await drop_dead_partitions(conn) == [partition_name(ids["r-close"])]
            assert not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"ingest.{partition_name(ids['r-close'])}")
            assert await conn.fetchval(f"SELECT count(*) FROM ingest.{partition_name(ids['r-open'])}") == 3
            assert await drop_dead_partitions(conn) == []
            entries = await conn.fetch("SELECT actor, action, kind, resource, correlation_id FROM ingest.audit_log ORDER BY id")
            assert all(e["correlation_id"] for e in entries)
            assert ("kl-operator", "POST /rounds/{round_id}/close", "admin") in [(e["actor"], e["action"], e["kind"]) for e in entries]
            assert any(e["actor"] == "retention" and '"r-close"' in e["resource"] for e in entries)
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await conn.execute("UPDATE ingest.audit_log SET actor = 'someone else'")
            with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
                await conn.execute("TRUNCATE ingest.audit_log")
        finally:
            await conn.close()

        # The auditor reads the log; nobody else does.
        auditor = dev_issuer.mint("auditor", ["audit:read", "kommuner:all"])
        log = await client.get("/audit", headers=bearer(auditor))
        assert log.status_code == 200
        assert {"POST /rounds/{round_id}/close", "POST /rounds/{round_id}/extracts/{kommunekode}"} <= {e["action"] for e in log.json()["entries"]}
        assert (await client.get("/audit", headers=bearer(operator))).status_code == 403
        local = dev_issuer.mint("auditor-101", ["audit:read"], ["101"])
        own = (await client.get("/audit", headers=bearer(local))).json()["entries"]
        assert own and {e["kommunekode"] for e in own} == {"101"}
        assert (await client.get("/audit?kommunekode=751", headers=bearer(local))).status_code == 403


async def test_an_objection_erases_the_citizen_and_keeps_them_out_of_later_extracts(service_env, dev_issuer, database_url):
    app = create_app(settings_from_env(IngestSettings, service_env))
    async with running_app(app) as client:
        await _deliver(client, dev_issuer, "r1")
        officer = dev_issuer.mint("kl-privacy", ["privacy:admin", "kommuner:all"])
        response = await client.post("/privacy/requests", json={"cpr": "0101901234", "kind": "objection"}, headers=bearer(officer))
        assert response.status_code == 202, response.text
        assert "0101901234" not in response.text
        request_id = response.json()["request_id"]

        async def erased_here():
            r = await client.get(f"/privacy/requests/{request_id}", headers=bearer(officer))
            return r.json() if r.json()["receipts"] else None

        status = await _wait(erased_here)
        assert status["receipts"][0]["service"] == "ingest" and status["receipts"][0]["removed"] == {"citizen": 1}
        report = await _deliver(client, dev_issuer, "r2")
        assert report["rows_valid"] == 2
        assert report["exclusions"] == {"objection": 1}
        conn = await asyncpg.connect(database_url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM ingest.citizen") == 4
            # The request itself never stored the CPR number, in any form.
            dump = await conn.fetchval("SELECT string_agg(t::text, ' ') FROM ingest.privacy_request t")
            assert "010190" not in dump
        finally:
            await conn.close()


async def test_cpr_numbers_are_re_encrypted_under_a_new_key_without_downtime(service_env, dev_issuer, database_url):
    old_env = dict(service_env)
    app = create_app(settings_from_env(IngestSettings, old_env))
    async with running_app(app) as client:
        await _deliver(client, dev_issuer, "rk")

    new_key = base64.b64encode(os.urandom(32)).decode()
    rotated = dict(service_env)
    rotated["CPR_KEYS"] = service_env["CPR_KEYS"].rstrip("}") + f', "cpr-2": "{new_key}"}}'
    rotated["CPR_ACTIVE_KEY_ID"] = "cpr-2"
    rotated["REENCRYPT_BATCH_ROWS"] = "2"
    settings = settings_from_env(IngestSettings, rotated)
    app = create_app(settings)
    keys_admin = dev_issuer.mint("kl-keys", ["keys:admin", "kommuner:all"])
    async with running_app(app) as client:
        # New deliveries use the new key at once; old rows are still readable meanwhile.
        await _deliver(client, dev_issuer, "rk2")

        async def all_moved():
            status = (await client.get("/admin/keys", headers=bearer(keys_admin))).json()
            return status if status["reencryption_pending"] == 0 else None

        status = await _wait(all_moved)
        assert status == {"active_key_id": "cpr-2", "rows_per_key_id": {"cpr-2": 6}, "reencryption_pending": 0}
        assert (await client.get("/admin/keys", headers=bearer(_operator(dev_issuer)))).status_code == 403

    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT cpr_ciphertext, cpr_key_id FROM ingest.citizen")
    finally:
        await conn.close()
    plain = {decrypt_cpr(r["cpr_ciphertext"], key=settings.cpr_keyring["cpr-2"], key_id="cpr-2") for r in rows}
    assert plain == {"0101901234", "0202852345", "0505922217"}


async def test_the_service_drops_a_superseded_deliverys_partition_in_the_background(service_env, dev_issuer, database_url):
    settings = settings_from_env(IngestSettings, service_env, partition_cleanup_interval_seconds=0.2)
    async with running_app(create_app(settings)) as client:
        first = await _deliver(client, dev_issuer, "r-redeliver")
        second = await _deliver(client, dev_issuer, "r-redeliver", rows=ROWS[:2])
        conn = await asyncpg.connect(database_url)
        try:
            ids = {row["status"]: row["id"] for row in await conn.fetch("SELECT id, status FROM ingest.delivery")}
            assert str(ids["superseded"]) == first["delivery_id"] and str(ids["accepted"]) == second["delivery_id"]
            superseded = f"ingest.{partition_name(ids['superseded'])}"

            async def gone():
                return not await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", superseded)

            await _wait(gone)
            assert await conn.fetchval("SELECT count(*) FROM ingest.citizen") == 2
            assert await conn.fetchval(f"SELECT count(*) FROM ingest.{partition_name(ids['accepted'])}") == 2
        finally:
            await conn.close()
