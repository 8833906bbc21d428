"""Response rates by adaptive follow-up arm through analytics' consumer and API: the arm comes on a
later invitation.sent than the citizen's first (dispatch's rule acts before a reminder), some
citizens answered before their arm reached analytics and some after; either way the published
rates by arm are the true ones, and a replay of the arms changes nothing."""

from __future__ import annotations

from collections import Counter

from services.analytics.config import AnalyticsSettings
from services.analytics.main import create_app
from services.analytics.synthetic import synthetic_round
from shared.events import InvitationSent
from shared.testing.fixtures import bearer, publish_events, running_app, settings_from_env
from test_analytics_api import QUIET, wait_for_counts, wait_for_release_of_everything

ROUND = "2026-f"
KOMMUNER = ["101", "751"]


def arm_of(i: int) -> str | None:
    return ("followup_extra", "followup_control", None)[i % 3]


async def test_rates_by_followup_arm_whichever_comes_first(service_env, dev_issuer, kafka_bootstrap, topic_prefix):
    settings = settings_from_env(AnalyticsSettings, service_env, **QUIET)
    rnd = synthetic_round(ROUND, KOMMUNER, respondents=300, seed=3, questions=("q1",), arms=(None,), invite_factor=(2, 3))
    # The rule reached every citizen of 751 not among the first third who answered; its reminder
    # carries the arm. Those answers come before the arms, the rest after.
    answered = {r.pseudonym for r in rnd.responses}
    early = {r.pseudonym for i, r in enumerate(rnd.responses) if i % 2 == 0}
    followups, arms = [], {}
    for i, e in enumerate(e for e in rnd.invitations if e.kommunekode == "751"):
        if (arm := arm_of(i)) is not None:
            arms[e.pseudonym] = (e.kommunekode, arm)
            followups.append(InvitationSent(**e.model_dump(exclude={"step", "followup_arm", "sent_at"}), step="reminder_1",
                                            followup_arm=arm, sent_at=e.sent_at.replace(day=8)))
    kl = dev_issuer.mint("kl", ["aggregates:read", "kommuner:all"])
    app = create_app(settings)
    async with running_app(app) as client:
        await publish_events(kafka_bootstrap, topic_prefix, rnd.samples + rnd.invitations)
        await publish_events(kafka_bootstrap, topic_prefix, [r for r in rnd.responses if r.pseudonym in early])
        await wait_for_counts(client, kl, ROUND, len(rnd.invitations), len(early))
        await publish_events(kafka_bootstrap, topic_prefix, followups + followups[:10])  # some twice
        await publish_events(kafka_bootstrap, topic_prefix, [r for r in rnd.responses if r.pseudonym not in early])
        await wait_for_counts(client, kl, ROUND, len(rnd.invitations), len(rnd.responses))
        await wait_for_release_of_everything(client, kl, service_env["DATABASE_URL"], ROUND)
        r = await client.get(f"/rounds/{ROUND}/response-rates/detail", params={"dimension": "followup"}, headers=bearer(kl))
        assert r.status_code == 200, r.text
        rows = {(row["kommunekode"], row["level"]): row for row in r.json()["rows"]}

    invited, answers = Counter(), Counter()
    for e in rnd.invitations:
        level = arms.get(e.pseudonym, (None, "none"))[1]
        for key in ((e.kommunekode, level), (e.kommunekode, "total"), ("national", level), ("national", "total")):
            invited[key] += 1
            answers[key] += e.pseudonym in answered
    assert set(rows) == set(invited)
    for key, row in rows.items():
        assert row["invited"] == invited[key], key
        assert row["suppressed"] or row["answers"] == answers[key], (key, row, answers[key])
    for level in ("followup_extra", "followup_control"):
        assert not rows[("751", level)]["suppressed"] and rows[("751", level)]["answers"] >= 5
