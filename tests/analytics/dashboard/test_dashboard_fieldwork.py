"""The dashboard while a round collects answers: the release loop publishes response rates only
(scope "rates"), so the overview shows who answered (and how representative the answers are,
moving with the releases as answers arrive) and says why nothing else, and every page
of answers (questions, breakdowns, fair comparison, free texts, charts, reports) is refused with
that reason, never shown from the live tallies. Real PostgreSQL and broker, the service's own
release loop."""

from __future__ import annotations

import asyncio
import re
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from dashboard_helpers import Tables, demo_round, model_variables
from services.analytics.config import AnalyticsSettings
from services.analytics.domain.representativeness import SampleCell, representativeness
from services.analytics.models import SampleChunk
from services.analytics.main import create_app
from shared.testing.fixtures import bearer, create_test_database, make_service_env, publish_events, running_app, settings_from_env
from shared.testing.round import round_defined_event

ROUND = "2025-1"


def text_of(html: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", html).split())


async def answers_released(client, token: str, answers: int, chunks: int):
    """Until analytics holds the sample's ``chunks`` (who could have answered) and the latest
    release counts ``answers`` answers."""
    app = client._transport.app  # noqa: SLF001 - the test's own app
    async with asyncio.timeout(120):
        while True:
            async with app.state.runtime.uow() as uow:
                held = await uow.session.scalar(sa.select(sa.func.count()).select_from(SampleChunk).where(SampleChunk.round_id == ROUND))
            if held == chunks:
                break
            await asyncio.sleep(0.2)
        while True:
            r = await client.get(f"/rounds/{ROUND}/response-rates", headers=bearer(token))
            if r.status_code == 200 and r.json()["rows"][0]["answers"] == answers:
                return r
            await asyncio.sleep(0.2)


def representativeness_shown(page) -> tuple[str, str]:
    """The municipality's and the country's R-indicator as the overview shows them."""
    rows = {row[0]: row[1:] for row in Tables(page.text).tables["rep-indicators"][1:]}
    return tuple(rows["R-indikator"])


def expected_r(rnd, responses, kommune: str, models: tuple[tuple[str, ...], ...]) -> tuple[str, str]:
    """The R-indicators of the municipality and the country, counted from the events, of a
    propensity model of ``models``' variables (per column; none: not measured)."""
    answered = {r.pseudonym for r in responses}
    out = []
    for only, model in zip((kommune, None), models):
        if not model:
            out.append("–")
            continue
        cells: dict[tuple, list[int]] = {}
        for chunk in rnd.samples:
            for p in chunk.persons:
                if only in (None, chunk.kommunekode):
                    values = {"maalgruppe": p.maalgruppe, **p.bands.model_dump()}
                    key = ((chunk.kommunekode,) if only is None else ()) + tuple(values[v] for v in model)
                    c = cells.setdefault((key, p.design_weight), [0, 0])
                    c[0] += 1
                    c[1] += p.pseudonym in answered
        cells_ = [SampleCell(key, w, n, a) for (key, w), (n, a) in sorted(cells.items())]
        sampled, got = sum(c.sampled for c in cells_), sum(c.answered for c in cells_)
        assert min(got, sampled - got) >= 5  # enough answers and non-answers to be shown
        r = representativeness(cells_, (("kommunekode",) if only is None else ()) + model)
        out.append(f"{r.r_indicator:.2f}".replace(".", ","))
    return tuple(out)


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
        # Half the answers first: the representativeness figures are those of the release.
        first = responses[::2]
        await publish_events(kafka_bootstrap, prefix, [definition, *rnd.samples, *rnd.invitations, *first])
        await answers_released(client, kl, len(first), len(rnd.samples))
        page = await client.get(f"/dashboard/r/{ROUND}/k/751", headers=bearer(aarhus))
        early, early_models = representativeness_shown(page), model_variables(page.text)
        # A release of rates only publishes no gender, age or duration: the model has none of them.
        assert all(set(model) <= {"maalgruppe"} for model in early_models)
        assert early == expected_r(rnd, first, "751", early_models), "the figures of the release with half the answers"
        await publish_events(kafka_bootstrap, prefix, responses[1::2])
        r = await answers_released(client, kl, len(responses), len(rnd.samples))
        rates = r.json()
        assert rates["scope"] == "rates" and rates["phase"] == "preliminary"
        aarhus_rate = {row["kommunekode"]: row for row in rates["rows"]}["751"]

        page = await client.get(f"/dashboard/r/{ROUND}/k/751", headers=bearer(aarhus))
        assert page.status_code == 200
        # The answers that came since moved the figures with the release.
        models = model_variables(page.text)
        assert all(set(model) <= {"maalgruppe"} for model in models)
        assert representativeness_shown(page) == expected_r(rnd, responses, "751", models)
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
