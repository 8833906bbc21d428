"""Analytics' list of rounds (GET /rounds) on its success path: the rounds whose events arrived,
with their questionnaire, oldest first answer first."""

from __future__ import annotations

import asyncio

from services.analytics.config import AnalyticsSettings
from services.analytics.main import create_app
from services.analytics.synthetic import synthetic_round
from shared.testing.fixtures import bearer, publish_events, running_app, settings_from_env


async def test_rounds_are_listed_oldest_first_with_their_questionnaire(service_env, dev_issuer, kafka_bootstrap, topic_prefix):
    rounds = [synthetic_round(round_id, ["101"], respondents=12, seed=seed, questions=("q1",)) for round_id, seed in (("r-b", 2), ("r-a", 3))]
    first_answer = {rnd.round_id: min(r.submitted_at for r in rnd.responses) for rnd in rounds}
    expected = sorted(first_answer, key=lambda round_id: (first_answer[round_id], round_id))
    reader = bearer(dev_issuer.mint("aarhus-bi", ["aggregates:read"], ["101"]))

    app = create_app(settings_from_env(AnalyticsSettings, service_env))
    async with running_app(app) as client:
        empty = await client.get("/rounds", headers=reader)
        assert empty.status_code == 200, empty.text
        assert empty.json() == []

        for rnd in rounds:
            await publish_events(kafka_bootstrap, topic_prefix, [*rnd.samples, *rnd.invitations, *rnd.responses])

        async with asyncio.timeout(60):
            while True:
                listed = await client.get("/rounds", headers=reader)
                assert listed.status_code == 200, listed.text
                if len(listed.json()) == 2 and all(r["questionnaire_id"] for r in listed.json()):
                    break
                await asyncio.sleep(0.2)
    assert listed.json() == [{"round_id": round_id, "questionnaire_id": "kl_core"} for round_id in expected]
