"""Responses' citizen API on its success path: opting out over JSON (what a client without the
form uses) answers with the receipt, spends the link and tells the other services."""

from __future__ import annotations

import sys
from pathlib import Path

from services.responses.config import ResponsesSettings
from services.responses.main import create_app
from shared.testing.fixtures import running_app, settings_from_env

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
