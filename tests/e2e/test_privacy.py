"""Retention and erasure across the five services as processes (issue 10).

After a round is closed and its retention has run, no CPR number, name or phone number of the
round is left anywhere the system keeps data (every column of every service's tables, every topic
payload, every service's log, the dispatch sink), and no service keeps a way back to the person
(pseudonym, sealed contact, link token), except the one documented exception: sampling keeps
the pseudonym of each sampled person for the "not sampled in the last N rounds" rule.
An erasure request reaches every service, and an objection also keeps the citizen out of the
next extract.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.events import TOPICS
from shared.testing.fixtures import bearer
from shared.testing.round import define_round_at, request_with_retry, synthetic_rows, wait_for
from test_round import KOMMUNER, run_round

pytestmark = pytest.mark.e2e

SCHEMAS = ("ingest", "sampling", "dispatch", "responses", "analytics")
# (schema, table, column) allowed to keep a round's pseudonyms after retention, and why.
SPARING_RECORD = {("sampling", "sampled_unit", "pseudonym")}  # "not sampled in the last N rounds"


def _identifiers() -> dict[str, list[str]]:
    rows = [row for i, size in enumerate(KOMMUNER.values()) for row in synthetic_rows(size, seed=i)]
    cprs = [row["cpr"] for row in rows] + [row["cpr"].replace("-", "") for row in rows]
    phones = [row["telefon"] for row in rows] + [row["telefon"].removeprefix("+45") for row in rows]
    # "Testperson 1" is a prefix of "Testperson 10": match whole names only.
    names = [row["navn"] for row in rows]
    return {"cpr": cprs, "phone": phones, "name": names, "cpr_compact": [row["cpr"].replace("-", "") for row in rows]}


def _pseudonyms(module_env, cprs: list[str]) -> list[str]:
    key = base64.b64decode(module_env["PSEUDONYM_KEY"])
    return [hmac.new(key, cpr.encode(), hashlib.sha256).hexdigest() for cpr in cprs]


def _pattern(values: list[str], whole_words: bool = False) -> str:
    escaped = "|".join(re.escape(v) for v in values)
    return rf"({escaped})(?![0-9])" if whole_words else f"({escaped})"


async def _columns_holding(database_url: str, pattern: str) -> dict[tuple[str, str, str], int]:
    """Every (schema, table, column) of the services' text or JSON columns matching ``pattern``."""
    conn = await asyncpg.connect(database_url)
    try:
        columns = await conn.fetch(
            """SELECT table_schema, table_name, column_name FROM information_schema.columns
                WHERE table_schema = ANY($1::text[]) AND data_type IN ('text', 'jsonb', 'json', 'character varying')""",
            list(SCHEMAS),
        )
        found = {}
        for schema, table, column in columns:
            n = await conn.fetchval(f'SELECT count(*) FROM "{schema}"."{table}" WHERE "{column}"::text ~ $1', pattern)
            if n:
                found[(schema, table, column)] = n
        return found
    finally:
        await conn.close()


async def _sealed_rows(database_url: str, round_id: str) -> dict[str, int]:
    """Rows of the round that still hold something only a key holder could read."""
    conn = await asyncpg.connect(database_url)
    try:
        return {
            "ingest.citizen": await conn.fetchval(
                "SELECT count(*) FROM ingest.citizen c JOIN ingest.delivery d ON d.id = c.delivery_id WHERE d.round_id = $1", round_id
            ),
            "sampling.frame_unit": await conn.fetchval(
                """SELECT count(*) FROM sampling.frame_unit u JOIN sampling.frame_delivery d USING (delivery_id)
                    WHERE d.round_id = $1""",
                round_id,
            ),
            "dispatch.invitation": await conn.fetchval(
                "SELECT count(*) FROM dispatch.invitation WHERE round_id = $1 AND (contact ? 'ciphertext' OR length(token_nonce) > 0)",
                round_id,
            ),
        }
    finally:
        await conn.close()


async def _topic_payloads(bootstrap: str, prefix: str) -> list[bytes]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = []
        for topic in [prefix + t for t in TOPICS]:
            for p in consumer.partitions_for_topic(topic) or await _partitions(consumer, topic):
                partitions.append(TopicPartition(topic, p))
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        values = []
        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in partitions])

        while await behind():
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                values.extend((r.key or b"") + b" " + (r.value or b"") for r in records)
        return values
    finally:
        await consumer.stop()


async def _partitions(consumer, topic) -> set[int]:
    await consumer._client.force_metadata_update()  # noqa: SLF001 (aiokafka has no public call)
    return consumer.partitions_for_topic(topic) or set()


def _log_text(stack) -> str:
    return "\n".join(Path(p.log_file).read_text(errors="replace") for p in stack.values() if p.log_file)


def _admin(dev_issuer) -> str:
    return dev_issuer.mint("kl-operator", ["rounds:admin", "aggregates:read", "kommuner:all"])


async def test_retention_leaves_no_identifier_of_the_round_anywhere(stack, dev_issuer, module_env):
    round_id = "retention-1"
    sink = Path(module_env["DEV_SINK_DIR"])
    run_round(stack, dev_issuer, sink, round_id)
    ids = _identifiers()
    pseudonyms = _pseudonyms(module_env, ids["cpr_compact"])
    plain = "|".join([_pattern(ids["cpr"]), _pattern(ids["phone"]), _pattern(ids["name"], whole_words=True)])
    db = module_env["DATABASE_URL"]

    # Before: the round is traceable in every service (so the checks below can fail).
    before = await _columns_holding(db, _pattern(pseudonyms))
    assert {schema for schema, _, _ in before} == set(SCHEMAS), before
    assert all((await _sealed_rows(db, round_id)).values())
    letters = list(sink.rglob("*.xml"))
    assert letters and any(re.search(plain, p.read_text(errors="replace")) for p in letters)

    admin = _admin(dev_issuer)
    response = request_with_retry(
        "POST", f"{stack['ingest'].url}/rounds/{round_id}/close", json={"retention_days": 0}, headers=bearer(admin)
    )
    assert response.status_code == 201, response.text

    def purged():
        r = request_with_retry("GET", f"{stack['ingest'].url}/rounds/{round_id}/retention", headers=bearer(admin))
        return r.json() if r.status_code == 200 and r.json()["complete"] else None

    status = wait_for(purged, 90, "every service's purge receipt")
    assert {r["service"] for r in status["receipts"]} == set(SCHEMAS)
    assert all(r["verified"] for r in status["receipts"])
    # Every receipt in: the round's last phase.
    definition = request_with_retry("GET", f"{stack['ingest'].url}/rounds/{round_id}", headers=bearer(admin)).json()
    assert definition["phase"] == "purged"

    # After: no plaintext identifier in any column, topic, log line or sink file ...
    assert await _columns_holding(db, plain) == {}
    payloads = await _topic_payloads(module_env["KAFKA_BOOTSTRAP_SERVERS"], module_env["KAFKA_TOPIC_PREFIX"])
    assert payloads
    assert not [p for p in payloads if re.search(plain.encode(), p)]
    assert not re.search(plain, _log_text(stack))
    assert not [p for p in sink.rglob("*") if p.is_file() and re.search(plain, p.read_text(errors="replace"))]
    # ... nothing left that a key holder could open ...
    assert await _sealed_rows(db, round_id) == {"ingest.citizen": 0, "sampling.frame_unit": 0, "dispatch.invitation": 0}
    # ... and no way back from the answers to the person: only the documented sparing record.
    assert set(await _columns_holding(db, _pattern(pseudonyms))) <= SPARING_RECORD
    # The answers themselves stay, and still count.
    overview = request_with_retry("GET", f"{stack['analytics'].url}/rounds/{round_id}/overview", headers=bearer(admin)).json()
    assert overview["total"]["answers"] > 0  # analytics' own facts
    rates = request_with_retry("GET", f"{stack['analytics'].url}/rounds/{round_id}/response-rates", headers=bearer(admin)).json()
    national = {row["kommunekode"]: row for row in rates["rows"]}["national"]
    # Published as the release decided (a small round's national row may be a protecting partner).
    assert national["suppressed"] or national["answers"] == overview["total"]["answers"]

    # Every purge is in the audit log, which nobody can rewrite.
    auditor = dev_issuer.mint("auditor", ["audit:read", "kommuner:all"])
    entries = request_with_retry("GET", f"{stack['ingest'].url}/audit?limit=1000", headers=bearer(auditor)).json()["entries"]
    actions = {(e["actor"], e["action"]) for e in entries}
    assert ("kl-operator", "POST /rounds/{round_id}/close") in actions
    assert ("retention", "purge round") in actions
    conn = await asyncpg.connect(db)
    try:
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM ingest.audit_log")
    finally:
        await conn.close()


async def test_an_objection_removes_the_citizen_everywhere_and_from_the_next_extract(stack, dev_issuer, module_env):
    round_id = "erasure-1"
    run_round(stack, dev_issuer, Path(module_env["DEV_SINK_DIR"]), round_id)
    citizen = synthetic_rows(KOMMUNER["101"], seed=0)[0]
    pseudonym = _pseudonyms(module_env, [citizen["cpr"].replace("-", "")])[0]
    db = module_env["DATABASE_URL"]
    assert len({schema for schema, _, _ in await _columns_holding(db, pseudonym)}) == len(SCHEMAS)

    officer = dev_issuer.mint("kl-privacy", ["privacy:admin", "kommuner:all"])
    response = request_with_retry(
        "POST",
        f"{stack['ingest'].url}/privacy/requests",
        json={"cpr": citizen["cpr"], "kind": "objection", "reference": "sag-2026-17"},
        headers=bearer(officer),
    )
    assert response.status_code == 202, response.text
    request_id = response.json()["request_id"]
    assert citizen["cpr"] not in response.text and citizen["cpr"].replace("-", "") not in response.text

    def carried_out():
        r = request_with_retry("GET", f"{stack['ingest'].url}/privacy/requests/{request_id}", headers=bearer(officer))
        return r.json() if r.status_code == 200 and r.json()["complete"] else None

    status = wait_for(carried_out, 90, "every service's erasure receipt")
    assert {r["service"] for r in status["receipts"]} == set(SCHEMAS)
    # Gone everywhere; only ingest's block list remembers the pseudonym, to honour the objection.
    assert await _columns_holding(db, pseudonym) == {("ingest", "blocked_citizen", "pseudonym"): 1}
    assert citizen["cpr"] not in _log_text(stack) and citizen["cpr"].replace("-", "") not in _log_text(stack)

    # The next extract that lists the citizen leaves them out, and says why.
    define_round_at(stack["ingest"].url, _admin(dev_issuer), "erasure-2")
    token = dev_issuer.mint("momentum-dev", ["extracts:write"], ["101"])
    response = request_with_retry(
        "POST",
        f"{stack['ingest'].url}/rounds/erasure-2/extracts/101",
        json={"reference_date": "2023-08-01", "rows": synthetic_rows(KOMMUNER["101"], seed=0)},
        headers=bearer(token),
    )
    assert response.status_code == 201, response.text
    report = response.json()
    assert report["rows_valid"] == KOMMUNER["101"] - 1
    assert report["exclusions"].get("objection") == 1, report
    assert await _columns_holding(db, pseudonym) == {("ingest", "blocked_citizen", "pseudonym"): 1}


def test_a_privacy_request_needs_its_scope_and_a_real_cpr_number(stack, dev_issuer):
    url = f"{stack['ingest'].url}/privacy/requests"
    body = {"cpr": "010190-1234", "kind": "erasure"}
    operator = _admin(dev_issuer)  # rounds:admin + kommuner:all, but not privacy:admin
    assert request_with_retry("POST", url, json=body, headers=bearer(operator)).status_code == 403
    officer = dev_issuer.mint("kl-privacy", ["privacy:admin", "kommuner:all"])
    bad = request_with_retry("POST", url, json={"cpr": "320190-1234", "kind": "erasure"}, headers=bearer(officer))
    assert bad.status_code == 422
    assert "320190" not in bad.text
    assert json.loads(bad.text)["detail"][0]["loc"] == ["body", "cpr"]
