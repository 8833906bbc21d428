"""Responses on the success path of routes no other test reaches: opting out over JSON (what a
client without the form uses) answers with the receipt, spends the link and tells the other
services; an operator reads a round's questionnaire back as set."""

from __future__ import annotations

import sys
from pathlib import Path

from services.responses.config import ResponsesSettings
from services.responses.main import create_app
from shared.testing.fixtures import bearer, running_app, settings_from_env

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "responses" / "integration"))
from responses_helpers import issue, read_events, token_hash  # noqa: E402


async def test_json_opt_out_spends_the_link_and_publishes_the_opt_out(service_env, kafka_bootstrap):
    prefix = service_env["KAFKA_TOPIC_PREFIX"]
    app = create_app(settings_from_env(ResponsesSettings, service_env))
    async with running_app(app) as client:
        token, other = await issue(app, kafka_bootstrap, prefix, 2, round_id="r-optout", kommunekode="101")

        response = await client.post(f"/api/survey/{token}/opt-out")
        assert response.status_code == 200, response.text
        assert response.json() == {"status": "opted_out", "round_id": "r-optout"}

        # The link is spent: neither a second opt-out nor answers are taken; the other link is untouched.
        assert (await client.post(f"/api/survey/{token}/opt-out")).status_code == 409
        assert (await client.post(f"/api/survey/{token}/submission", json={"answers": {"q1": 4}})).status_code == 409
        assert (await client.post(f"/api/survey/{other}/submission", json={"answers": {"q1": 4}})).status_code == 201

    events = await read_events(kafka_bootstrap, f"{prefix}response.opted_out", want=1)
    pseudonym = "ps-" + token_hash(token)[:16]
    assert [e["data"]["pseudonym"] for e in events] == [pseudonym]
    assert events[0]["data"]["round_id"] == "r-optout" and events[0]["data"]["kommunekode"] == "101"


async def test_reading_a_rounds_questionnaire(service_env, dev_issuer):
    admin = bearer(dev_issuer.mint("kl-admin", ["rounds:admin", "kommuner:all"]))
    supplement = {
        "kommunekode": "147",
        "version": 1,
        "questions": [{"id": "k147_vej", "kind": "free_text", "text": {"da": "Hvad kunne vi gøre bedre?", "en": "What could we do better?"}}],
    }
    app = create_app(settings_from_env(ResponsesSettings, service_env))
    async with running_app(app) as client:
        # A round nobody configured: the service's default questionnaire, nothing else.
        unset = await client.get("/api/admin/rounds/r-read/questionnaire", headers=admin)
        assert unset.status_code == 200, unset.text
        assert unset.json() == {
            "round_id": "r-read", "core": "kl_core_v1", "modules": [], "supplements": {}, "version_keys": {"default": "kl_core@1"},
        }

        assert (await client.put("/api/admin/supplements/147/1", json=supplement, headers=admin)).status_code == 201
        config = {"core": "kl_core_v1", "modules": ["digital_tools_v1"], "supplements": {"147": 1}}
        assert (await client.put("/api/admin/rounds/r-read/questionnaire", json=config, headers=admin)).status_code == 200

        # Read back as set, with the version each municipality's citizens get.
        read = await client.get("/api/admin/rounds/r-read/questionnaire", headers=admin)
        assert read.status_code == 200, read.text
        assert read.json() == {
            "round_id": "r-read",
            "core": "kl_core_v1",
            "modules": ["digital_tools_v1"],
            "supplements": {"147": 1},
            "version_keys": {"default": "kl_core@1+digital_tools@1", "147": "kl_core@1+digital_tools@1+lokal_147@1"},
        }
        # Another round is not affected.
        other = (await client.get("/api/admin/rounds/r-other/questionnaire", headers=admin)).json()
        assert other["modules"] == [] and other["version_keys"] == {"default": "kl_core@1"}
