"""The dashboard while a round collects answers: the release loop publishes response rates only
(scope "rates"), so the overview shows who answered and says why nothing else, and every page
of answers (questions, breakdowns, fair comparison, free texts, charts, reports) is refused with
that reason, never shown from the live tallies. Real PostgreSQL and broker, the service's own
release loop."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta

from dashboard_helpers import Tables, demo_round
from services.analytics.config import AnalyticsSettings
from services.analytics.main import create_app
from shared.testing.fixtures import bearer, create_test_database, make_service_env, publish_events, running_app, settings_from_env
from shared.testing.round import round_defined_event

ROUND = "2025-1"


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


async def test_fieldwork_pages_show_response_rates_and_no_answers(postgres_admin_url, kafka_bootstrap, dev_issuer, data_keys, tmp_path):
    database_url = await create_test_database(postgres_admin_url)
    prefix = f"t{uuid.uuid4().hex[:10]}."
    env = make_service_env(database_url, kafka_bootstrap, prefix, dev_issuer, data_keys, tmp_path)
    kl = dev_issuer.mint("kl", ["aggregates:read", "kommuner:all"])
    aarhus = dev_issuer.mint("aarhus", ["aggregates:read"], ["751"])
    # The loop's default scope: fieldwork releases publish response rates only.
    settings = settings_from_env(AnalyticsSettings, env, publication_release_quiet_seconds=0.3)
    assert settings.publication_preliminary_scope == "rates"
    async with running_app(create_app(settings)) as client:
        now = datetime.now(UTC)
        rnd, responses = demo_round(ROUND)
        definition = round_defined_event(ROUND, phase="in_fieldwork", delivery_deadline=now - timedelta(days=1),
                                         invitation_at=now - timedelta(hours=1), fieldwork_ends_at=now + timedelta(days=14))
        await publish_events(kafka_bootstrap, prefix, [definition, *rnd.samples, *rnd.invitations, *responses])
        async with asyncio.timeout(120):
            while True:
                r = await client.get(f"/rounds/{ROUND}/response-rates", headers=bearer(kl))
                if r.status_code == 200 and r.json()["rows"][0]["answers"] == len(responses):
                    break
                await asyncio.sleep(0.2)
        rates = r.json()
        assert rates["scope"] == "rates" and rates["phase"] == "preliminary"
        aarhus_rate = {row["kommunekode"]: row for row in rates["rows"]}["751"]

        page = await client.get(f"/dashboard/r/{ROUND}/k/751", headers=bearer(aarhus))
        assert page.status_code == 200
        table = Tables(page.text).tables["rates"]
        assert table[1][0] == "Aarhus" and table[1][2] == str(aarhus_rate["answers"]) and table[1][3] == str(aarhus_rate["invited"])
        assert 'id="rates-only"' in page.text and "ikke hvad de har svaret" in text_of(page.text)
        assert 'id="satisfaction"' not in page.text

        free_text = responses[0].answers["q15"]
        for path in ("q", "q/q13", "breakdowns?question=q13", "fair?question=q13", "texts?question=q15", "trends",
                     "chart/themes.png", "report.pptx", "report.pdf"):
            refused = await client.get(f"/dashboard/r/{ROUND}/k/751/{path}", headers=bearer(aarhus))
            assert refused.status_code == 404, path
            assert "indtil resultaterne udgives" in text_of(refused.text), path
            assert free_text not in refused.text

        # The operator cuts the final release after fieldwork: the answers are published.
        operator = dev_issuer.mint("kl-operator", ["rounds:admin", "aggregates:read", "kommuner:all"])
        r = await client.post(f"/rounds/{ROUND}/releases", json={"phase": "final"}, headers=bearer(operator))
        assert r.status_code == 201, r.text
        page = await client.get(f"/dashboard/r/{ROUND}/k/751", headers=bearer(aarhus))
        assert page.status_code == 200 and 'id="rates-only"' not in page.text and 'id="satisfaction"' in page.text
        assert (await client.get(f"/dashboard/r/{ROUND}/k/751/q/q13", headers=bearer(aarhus))).status_code == 200
