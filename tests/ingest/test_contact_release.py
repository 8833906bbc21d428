"""Ingest keeps every citizen's sealed contact and releases only the sampled citizens'
(``contacts.released``, answering ``sample.drawn``), on the real broker and database."""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import asyncpg
from aiokafka import AIOKafkaConsumer

from ingest_helpers import ensure_round
from services.ingest.config import IngestSettings
from services.ingest.main import create_app
from services.ingest.pseudonymisation import pseudonym_for
from shared.crypto import open_contact
from shared.events import (
    Bands,
    ContactsReleased,
    Envelope,
    EventPayload,
    SampleDrawn,
    SampleDrawnV1,
    SampledPerson,
    SampledPersonV1,
)
from shared.testing.fixtures import bearer, publish_events, running_app, settings_from_env

ROWS = [
    {"cpr": "010190-1234", "ydelse": "Dagpenge", "overgangsdato": "2022-01-01", "telefon": "21234567", "navn": "Anna Andersen"},
    {"cpr": "020285-2345", "ydelse": "Sygedagpenge", "overgangsdato": "2023-03-01", "navn": "Bo Berg"},
    {"cpr": "050592-2217", "ydelse": "Dagpenge", "overgangsdato": "2021-01-01"},
]
BANDS = Bands(gender="M", age_band="30-39", duration_band="12-23 mdr")


def _pseudonym(cpr: str, data_keys: dict) -> str:
    return pseudonym_for(cpr.replace("-", ""), base64.b64decode(data_keys["PSEUDONYM_KEY"]))


def _keyring(data_keys: dict) -> dict[str, bytes]:
    return {key_id: base64.b64decode(key) for key_id, key in json.loads(data_keys["CONTACT_KEYS"]).items()}


async def _deliver(client, dev_issuer, round_id: str, rows) -> dict:
    await ensure_round(client, dev_issuer, round_id)
    token = dev_issuer.mint("momentum-dev", ["extracts:write"], ["101"])
    response = await client.post(
        f"/rounds/{round_id}/extracts/101", json={"reference_date": "2023-08-01", "rows": rows}, headers=bearer(token)
    )
    assert response.status_code == 201, response.text
    return response.json()


def _sample(round_id: str, pseudonyms: list[str], *, chunk_no: int = 0, draw_id: uuid.UUID | None = None) -> SampleDrawn:
    return SampleDrawn(
        round_id=round_id, kommunekode="101", draw_id=draw_id or uuid.uuid4(), seed=1, chunk_no=chunk_no, final=False,
        persons=[
            SampledPerson(pseudonym=p, maalgruppe="dagpenge", stratum="101:dagpenge", bands=BANDS,
                          inclusion_probability=0.5, design_weight=2.0)
            for p in pseudonyms
        ],
    )


async def _produce(bootstrap: str, prefix: str, payloads: list[EventPayload]) -> None:
    """As sampling publishes its chunks (the release's audit entry names the source)."""
    await publish_events(bootstrap, prefix, payloads, source="sampling", correlation_id=f"test:{payloads[0].round_id}")


async def _releases(bootstrap: str, prefix: str, round_id: str, count: int, timeout: float = 30) -> list[tuple[Envelope, ContactsReleased]]:
    """The round's contacts.released events: at least ``count``, then half a second more to catch any extra."""
    consumer = AIOKafkaConsumer(f"{prefix}contacts.released", bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    found: list[tuple[Envelope, ContactsReleased]] = []

    async def fetch(timeout_ms: int) -> None:
        for records in (await consumer.getmany(timeout_ms=timeout_ms)).values():
            for envelope in (Envelope.model_validate_json(record.value) for record in records):
                if (event := envelope.payload()).round_id == round_id:
                    found.append((envelope, event))

    try:
        async with asyncio.timeout(timeout):
            while len(found) < count:
                await fetch(200)
        await fetch(500)
    finally:
        await consumer.stop()
    return found


async def test_only_the_sampled_citizens_contacts_leave_ingest(service_env, dev_issuer, data_keys, database_url, kafka_bootstrap, topic_prefix):
    app = create_app(settings_from_env(IngestSettings, service_env))
    async with running_app(app) as client:
        await _deliver(client, dev_issuer, "r-release", ROWS)
        anna, bo, _ = (_pseudonym(row["cpr"], data_keys) for row in ROWS)
        stranger = "f" * 64  # sampled, but not in the municipality's delivery
        draw_id = uuid.uuid4()
        await _produce(kafka_bootstrap, topic_prefix, [_sample("r-release", [anna, bo, stranger], draw_id=draw_id, chunk_no=3)])
        [(envelope, released)] = await _releases(kafka_bootstrap, topic_prefix, "r-release", 1)

        assert (released.kommunekode, released.draw_id, released.chunk_no) == ("101", draw_id, 3)
        assert released.key() == "r-release:101"
        assert envelope.correlation_id == "test:r-release"  # follows the draw's correlation id
        assert released.missing == [stranger]
        opened = {
            c.pseudonym: open_contact(c.contact, round_id="r-release", pseudonym=c.pseudonym, keyring=_keyring(data_keys))
            for c in released.contacts
        }
        assert set(opened) == {anna, bo}  # the third citizen was not sampled: their contact stays
        assert (opened[anna].cpr, opened[anna].name, opened[anna].phone_e164) == ("0101901234", "Anna Andersen", "+4521234567")
        assert (opened[bo].cpr, opened[bo].name, opened[bo].phone_e164) == ("0202852345", "Bo Berg", None)

        conn = await asyncpg.connect(database_url)
        try:
            audit = await conn.fetch("SELECT actor, kind, kommunekode, resource FROM ingest.audit_log WHERE action = 'contacts.released'")
        finally:
            await conn.close()
        assert [(a["actor"], a["kind"], a["kommunekode"]) for a in audit] == [("sampling", "personal-data-release", "101")]
        resource = json.loads(audit[0]["resource"])
        assert (resource["round_id"], resource["draw_id"], resource["released"], resource["missing"]) == ("r-release", str(draw_id), 2, 1)


async def test_a_corrected_delivery_releases_the_corrected_contact(service_env, dev_issuer, data_keys, kafka_bootstrap, topic_prefix):
    app = create_app(settings_from_env(IngestSettings, service_env))
    async with running_app(app) as client:
        await _deliver(client, dev_issuer, "r-corrected", ROWS)
        # The correction renames Anna and leaves Bo out (no longer on benefit).
        corrected = [{**ROWS[0], "navn": "Anna Berg"}, ROWS[2]]
        await _deliver(client, dev_issuer, "r-corrected", corrected)
        anna, bo, _ = (_pseudonym(row["cpr"], data_keys) for row in ROWS)
        await _produce(kafka_bootstrap, topic_prefix, [_sample("r-corrected", [anna, bo])])
        [(_, released)] = await _releases(kafka_bootstrap, topic_prefix, "r-corrected", 1)
        [contact] = released.contacts
        assert open_contact(contact.contact, round_id="r-corrected", pseudonym=anna, keyring=_keyring(data_keys)).name == "Anna Berg"
        assert released.missing == [bo]  # never contacted: not in the municipality's population any more


async def test_a_version_1_sample_carried_its_contacts_and_gets_no_release(service_env, dev_issuer, data_keys, kafka_bootstrap, topic_prefix):
    app = create_app(settings_from_env(IngestSettings, service_env))
    async with running_app(app) as client:
        await _deliver(client, dev_issuer, "r-v1", ROWS)
        anna = _pseudonym(ROWS[0]["cpr"], data_keys)
        v2 = _sample("r-v1", [anna], chunk_no=1)
        contact = {"key_id": "contact-1", "nonce": "AAAAAAAAAAAAAAAA", "ciphertext": "AAAA"}
        v1 = SampleDrawnV1(
            **v2.model_dump(exclude={"persons", "chunk_no"}), chunk_no=0,
            persons=[SampledPersonV1(**p.model_dump(), contact=contact) for p in v2.persons],
        )
        await _produce(kafka_bootstrap, topic_prefix, [v1, v2])
        # The v2 chunk, produced after the v1 chunk on the same key, is answered; the v1 chunk is not.
        releases = await _releases(kafka_bootstrap, topic_prefix, "r-v1", 1)
        assert [event.chunk_no for _, event in releases] == [1]


async def test_an_exemption_from_digital_post_travels_sealed_to_dispatch(service_env, dev_issuer, data_keys, kafka_bootstrap, topic_prefix):
    """The optional column "Fritaget for Digital Post" (ja/nej) in a file, and
    ``fritaget_digital_post`` in a JSON batch, reach dispatch inside the sealed contact; a value
    that is not yes or no is a row error naming the column, and a JSON batch's a 422."""
    from ingest_helpers import upload_and_wait

    app = create_app(settings_from_env(IngestSettings, service_env))
    vendor = dev_issuer.mint("momentum-dev", ["extracts:write", "extracts:read"], ["101"])
    async with running_app(app) as client:
        await ensure_round(client, dev_issuer, "r-exempt-json")
        bad = await client.post("/rounds/r-exempt-json/extracts/101", headers=bearer(vendor), json={
            "reference_date": "2023-08-01", "rows": [{**ROWS[0], "fritaget_digital_post": "måske"}]})
        assert bad.status_code == 422 and "fritaget_digital_post" in bad.text
        await _deliver(client, dev_issuer, "r-exempt-json", [{**ROWS[0], "fritaget_digital_post": True}, ROWS[1]])

        await ensure_round(client, dev_issuer, "r-exempt-file")
        csv_text = (
            "CPR-nummer;Ydelse;Overgangsdato;Seneste samtale;Forløb afsluttet;Telefon;Passiv;Fritaget for Digital Post\n"
            "010190-1234;Dagpenge;01-01-2022;;;21234567;nej;Ja\n"
            "020285-2345;Sygedagpenge;01-03-2023;;;;nej;nej\n"
            "050592-2217;Dagpenge;01-01-2021;;;;nej;\n"
            "110393-1234;Dagpenge;01-01-2021;;;;nej;måske\n"
        )
        job = await upload_and_wait(client, vendor, csv_text.encode("cp1252"), round_id="r-exempt-file")
        assert job["status"] == "succeeded", job
        report = (await client.get(f"/deliveries/{job['delivery_id']}", headers=bearer(vendor))).json()
        assert report["rows_valid"] == 3 and report["rows_rejected"] == 1
        [error] = report["errors"]
        assert (error["column"], error["line"]) == ("fritaget_digital_post", 5) and "ja/nej" in error["message"]

        pseudonyms = [_pseudonym(row["cpr"], data_keys) for row in ROWS]
        await _produce(kafka_bootstrap, topic_prefix, [_sample("r-exempt-json", pseudonyms[:2]), _sample("r-exempt-file", pseudonyms)])
        for round_id, expected in (("r-exempt-json", [True, False]), ("r-exempt-file", [True, False, False])):
            [(_, released)] = await _releases(kafka_bootstrap, topic_prefix, round_id, 1)
            opened = {c.pseudonym: open_contact(c.contact, round_id=round_id, pseudonym=c.pseudonym, keyring=_keyring(data_keys))
                      for c in released.contacts}
            assert [opened[p].digital_post_exempt for p in pseudonyms[: len(expected)]] == expected
