"""Sampling follows the round ingest defines (round.defined on the real broker, real PostgreSQL):
no work for an unknown round, no draw before the round is ready unless forced (recorded), the
highest revision wins, and an operator's max_sample caps the allocation (the conflict shown and
recorded)."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import asyncpg

from sampling_helpers import citizens, delivery, produce, wait_for_frame
from services.sampling.config import SamplingSettings
from services.sampling.main import create_app
from shared.testing.fixtures import bearer, publish_events, running_app, settings_from_env
from shared.testing.round import round_defined_event

REF = date(2025, 8, 1)


async def _definition(database_url: str, round_id: str):
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchrow("SELECT revision, phase, kommuner FROM sampling.round_definition WHERE round_id = $1", round_id)
    finally:
        await conn.close()


async def _wait_revision(database_url: str, round_id: str, revision: int) -> None:
    async with asyncio.timeout(20):
        while (row := await _definition(database_url, round_id)) is None or row["revision"] < revision:
            await asyncio.sleep(0.1)


async def test_an_unknown_round_is_refused_and_a_draw_waits_for_the_round_to_be_ready(
    service_env, dev_issuer, kafka_bootstrap, topic_prefix, database_url
):
    token = bearer(dev_issuer.mint("kl-operator", ["rounds:admin", "kommuner:all"]))
    app = create_app(settings_from_env(SamplingSettings, service_env))
    async with running_app(app) as client:
        # The population arrives, the definition not (yet): sampling does nothing for the round.
        people = citizens("r-wait", "101", 300, seed=1, flagged=False)
        await produce(kafka_bootstrap, topic_prefix, delivery("r-wait", "101", people, reference_date=REF), define=False)
        await asyncio.sleep(1.0)
        for method, path in (("GET", "frame"), ("POST", "allocation"), ("POST", "draws")):
            refused = await client.request(method, f"/rounds/r-wait/{path}", headers=token)
            assert refused.status_code == 404, (path, refused.text)
            assert "r-wait" in refused.text and "POST /rounds" in refused.text

        # Defined with two municipalities and a deadline tomorrow: 147 has not delivered.
        deadline = datetime.now(UTC) + timedelta(days=1)
        await publish_events(
            kafka_bootstrap, topic_prefix,
            [round_defined_event("r-wait", revision=2, kommuner=["101", "147"], delivery_deadline=deadline)],
        )
        await wait_for_frame(client, token["Authorization"].split()[1], "r-wait", {"101": 300})
        # A replayed lower revision changes nothing.
        await publish_events(kafka_bootstrap, topic_prefix, [round_defined_event("r-wait", revision=1, kommuner=["999"])])
        await asyncio.sleep(0.5)
        assert (await _definition(database_url, "r-wait"))["kommuner"] == ["101", "147"]

        preview = await client.post("/rounds/r-wait/allocation", headers=token)
        assert preview.status_code == 200, preview.text
        early = await client.post("/rounds/r-wait/draws", json={"seed": 1}, headers=token)
        assert early.status_code == 409 and "147" in early.text and "force=true" in early.text

        forced = await client.post("/rounds/r-wait/draws", json={"seed": 1, "force": True}, headers=token)
        assert forced.status_code == 201, forced.text
        assert (forced.json()["forced"], forced.json()["missing"]) == (True, ["147"])
        conn = await asyncpg.connect(database_url)
        try:
            draw = await conn.fetchrow("SELECT forced_by, readiness FROM sampling.draw WHERE round_id = 'r-wait'")
            audited = await conn.fetchval("SELECT count(*) FROM sampling.audit_log WHERE action = 'draw.forced'")
        finally:
            await conn.close()
        assert draw["forced_by"] == "kl-operator" and '"147"' in draw["readiness"]
        assert audited == 1

        # A round whose phase has moved past the draw takes no allocation.
        await publish_events(kafka_bootstrap, topic_prefix, [round_defined_event("r-closed", revision=3, phase="closed")])
        await _wait_revision(database_url, "r-closed", 3)
        closed = await client.post("/rounds/r-closed/allocation", headers=token)
        assert closed.status_code == 409 and "closed" in closed.text


async def test_the_operators_max_sample_is_a_cap_shown_and_recorded_per_municipality(
    service_env, dev_issuer, kafka_bootstrap, topic_prefix, database_url
):
    token = dev_issuer.mint("kl-operator", ["rounds:admin", "kommuner:all"])
    app = create_app(settings_from_env(SamplingSettings, service_env))
    async with running_app(app) as client:
        people = {"101": citizens("r-cap", "101", 280, seed=1, flagged=False), "147": citizens("r-cap", "147", 60, seed=2, flagged=False)}
        await produce(kafka_bootstrap, topic_prefix, [c for k, p in people.items() for c in delivery("r-cap", k, p, reference_date=REF)])
        await wait_for_frame(client, token, "r-cap", {"101": 280, "147": 60})
        view = await client.post("/rounds/r-cap/allocation", json={"rules": {"min_sample": 50, "max_sample": 100}}, headers=bearer(token))
        assert view.status_code == 200, view.text
        by_kommune = {m["kommunekode"]: m for m in view.json()["municipalities"]}
        capped = by_kommune["101"]
        assert capped["sample"] == 100  # not the 280-person census the 200 rule asks for
        conflict = capped["cap_conflict"]
        assert (conflict["rule"], conflict["cap"], conflict["sample_needed"], conflict["decided_by"]) == (
            "min_expected_answers", 100, 280, "kl-operator",
        )
        assert conflict["decided_at"] is not None
        assert by_kommune["147"]["cap_conflict"] is None and by_kommune["147"]["sample"] == 60  # under the cap
        drawn = await client.post("/rounds/r-cap/draws", json={"seed": 3}, headers=bearer(token))
        assert drawn.status_code == 201, drawn.text
        assert drawn.json()["sampled"] == 160
        conn = await asyncpg.connect(database_url)
        try:
            table = await conn.fetchval("SELECT allocation::text FROM sampling.draw WHERE round_id = 'r-cap'")
            audited = await conn.fetchval("SELECT count(*) FROM sampling.audit_log WHERE action = 'allocation.capped'")
        finally:
            await conn.close()
        assert '"cap_conflict": {' in table and audited == 1
