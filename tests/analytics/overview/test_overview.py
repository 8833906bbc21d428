"""The round overview over HTTP and in Chromium: analytics fed the events each service publishes
(round.defined, delivery.accepted, sampling.progress, dispatch.progress, invitation.sent,
response.submitted) on a real broker; the API's and the page's figures are the events' counts,
replays and late older snapshots change nothing, only KL's operator sees it, the dashboard's start
page links to it, and the page passes axe-core (WCAG 2.1 A/AA)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import httpx
import pytest

from services.analytics.config import AnalyticsSettings
from services.analytics.main import create_app
from services.analytics.overview.domain import LOCAL
from shared.auth.dev_issuer import create_app as issuer_app
from shared.auth.dev_issuer import load_clients
from shared.events import (
    Bands,
    DeliveryAccepted,
    DispatchContactCount,
    DispatchProgress,
    DispatchStepCount,
    InvitationSent,
    ResponseSubmitted,
    SampledPerson,
    SampleDrawn,
    SamplingMunicipality,
    SamplingProgress,
)
from shared.testing.browser import CHROMIUM, CHROMIUM_ARGS, axe_source
from shared.testing.browser import axe_audit as audit
from shared.testing.fixtures import bearer, create_test_database, make_service_env, publish_events, running_app, served, settings_from_env
from shared.testing.round import round_defined_event

R = "ov-1"
AXE_DIR = Path(__file__).resolve().parents[1] / "dashboard"  # the dashboard tests' pinned axe-core


def now() -> datetime:
    return datetime.now(UTC)


# 09:00 Danish time two days ago: the answers 5 minutes, a day and two days after it fall on
# days 0, 1 and 2 whatever the hour the test runs.
INVITATION_AT = datetime.combine(now().astimezone(LOCAL).date() - timedelta(days=2), time(9), LOCAL).astimezone(UTC)
FIRST, SECOND, AARHUS = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()


def deliveries() -> list[DeliveryAccepted]:
    common = {"round_id": R, "rows_read": 0, "accepted_at": INVITATION_AT - timedelta(days=10)}
    return [
        DeliveryAccepted(**common | {"rows_read": 30}, kommunekode="101", delivery_id=FIRST, delivered_by="momentum-dev",
                         rows_valid=20, rows_rejected=6, rows_excluded=4, exclusions={"passiv": 4}),
        DeliveryAccepted(**common | {"rows_read": 32, "accepted_at": INVITATION_AT - timedelta(days=9)}, kommunekode="101",
                         delivery_id=SECOND, supersedes=FIRST, delivered_by="momentum-dev", rows_valid=25, rows_rejected=2,
                         rows_excluded=5, exclusions={"passiv": 3, "for_kort_tid": 2}),
        DeliveryAccepted(**common | {"rows_read": 12}, kommunekode="751", delivery_id=AARHUS, delivered_by="fasit-dev",
                         rows_valid=12, rows_rejected=0, rows_excluded=0),
    ]


def sampling(stage: str, as_of: datetime, sample_101: int) -> SamplingProgress:
    return SamplingProgress(
        round_id=R, stage=stage, max_sample=20, min_expected_answers=200.0, as_of=as_of,
        municipalities=[
            SamplingMunicipality(kommunekode="101", population=25, excluded={"forskerbeskyttet": 1}, eligible=24,
                                 sample=sample_101, expected_answers=sample_101 * 0.4, capped=True),
            SamplingMunicipality(kommunekode="751", population=12, eligible=12, sample=12, expected_answers=4.8),
        ],
    )


def dispatch(as_of: datetime, sent_101: int) -> DispatchProgress:
    return DispatchProgress(
        round_id=R, sending="sending", as_of=as_of,
        steps=[
            DispatchStepCount(kommunekode="101", step="invitation", channel="letter", status="sent", count=sent_101),
            DispatchStepCount(kommunekode="101", step="invitation", channel="letter", status="failed", count=20 - sent_101),
            DispatchStepCount(kommunekode="101", step="reminder_1", channel="letter", status="waiting_for_schedule", count=15),
            DispatchStepCount(kommunekode="101", step="reminder_1", channel="letter", status="skipped", count=5),
            DispatchStepCount(kommunekode="751", step="invitation", channel="letter", status="sent", count=12),
            DispatchStepCount(kommunekode="751", step="reminder_1", channel="sms", status="cancelled", count=9),
        ],
        contacts=[DispatchContactCount(kommunekode="751", waiting=0, no_contact=1)],
    )


def bands_of(i: int) -> Bands:
    return Bands(gender="KM"[i % 2], age_band=("18-29", "30-39", "50+")[i % 3], duration_band="0-6m")


def sample_events(round_id: str, sizes, bands=lambda k, i: bands_of(i)) -> list[SampleDrawn]:
    """sample.drawn chunks with the persons invited (their bands), no strata summary."""
    return [
        SampleDrawn(round_id=round_id, kommunekode=k, draw_id=uuid.UUID(int=1), seed=1, chunk_no=0, final=True, chunk_count=1,
                    persons=[SampledPerson(pseudonym=f"{k}{i:061d}", maalgruppe="dagpenge", stratum=f"{k}:dagpenge",
                                           bands=bands(k, i), inclusion_probability=0.5, design_weight=2.0) for i in range(n)])
        for k, n in sizes
    ]


def citizen_events() -> tuple[list[InvitationSent], list[ResponseSubmitted]]:
    invitations, answers = [], []
    for kommunekode, invited, answered in (("101", 19, 5), ("751", 12, 3)):
        for i in range(invited):
            pseudonym = f"{kommunekode}{i:061d}"
            stratum = f"{kommunekode}:dagpenge"
            invitations.append(InvitationSent(round_id=R, kommunekode=kommunekode, pseudonym=pseudonym, step="invitation",
                                              channel="digital_post", maalgruppe="dagpenge", stratum=stratum,
                                              sent_at=INVITATION_AT))
            if i < answered:
                # Answers on day 0 (the first), day 1 and day 2 since the invitation.
                answers.append(ResponseSubmitted(
                    round_id=R, kommunekode=kommunekode, pseudonym=pseudonym, questionnaire_id="kl_core",
                    questionnaire_version=1, mode="web", maalgruppe="dagpenge", stratum=stratum,
                    bands=bands_of(i), design_weight=2.0,
                    answers={"q1": 4}, submitted_at=INVITATION_AT + timedelta(minutes=5) + timedelta(days=min(i, 2)),
                ))
    return invitations, answers


@pytest.fixture(scope="module")
def tokens(dev_issuer) -> dict[str, str]:
    return {
        "operator": dev_issuer.mint("kl-operator", ["rounds:admin", "aggregates:read", "kommuner:all"]),
        "kl_reader": dev_issuer.mint("kl", ["aggregates:read", "kommuner:all"]),
        "aarhus": dev_issuer.mint("aarhus", ["aggregates:read"], ["751"]),
    }


async def fetch_overview(client, token: str) -> dict | None:
    r = await client.get(f"/rounds/{R}/overview", headers=bearer(token))
    return r.json() if r.status_code == 200 else None


async def wait_until(client, token: str, check, timeout: float = 60) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            body = await fetch_overview(client, token)
            if body is not None and check(body):
                return body
            await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
async def app_and_client(postgres_admin_url, kafka_bootstrap, dev_issuer, data_keys, tmp_path_factory, tokens):
    env = make_service_env(await create_test_database(postgres_admin_url), kafka_bootstrap, f"t{uuid.uuid4().hex[:10]}.",
                           dev_issuer, data_keys, tmp_path_factory.mktemp("overview"))
    app = create_app(settings_from_env(AnalyticsSettings, env, publication_release_quiet_seconds=0.3))
    async with running_app(app) as client:
        prefix = env["KAFKA_TOPIC_PREFIX"]
        definition = round_defined_event(
            R, revision=3, phase="in_fieldwork", kommuner=["101", "147", "751"], invitation_at=INVITATION_AT,
            reminders_at=[now() + timedelta(days=5)], fieldwork_ends_at=now() + timedelta(days=14),
        )
        invitations, answers = citizen_events()
        t0 = now()
        await publish_events(kafka_bootstrap, prefix, [
            round_defined_event(R, revision=1, phase="collecting_extracts", kommuner=["101", "147", "751"]), definition,
            *deliveries(), sampling("proposed", t0 - timedelta(minutes=5), 30), sampling("drawn", t0, 20),
            dispatch(t0 - timedelta(seconds=5), 10), dispatch(t0, 19), *sample_events(R, [("101", 19), ("751", 12)]),
            *invitations, *answers,
        ])
        await wait_until(client, tokens["operator"], lambda b: b["total"]["answers"] == len(answers) and b["sending"]
                         and b["total"]["invited"] == len(invitations) and b["sampling_stage"] == "drawn" and b["phase"] == "in_fieldwork"
                         and b["dispatch_as_of"] and len(b["total"]["deliveries"]) == 3
                         and (b["total"]["representativeness"] or {}).get("sampled") == len(invitations))
        # Replays (new event ids, as a re-publication), an older snapshot arriving late, and an
        # older revision of the round: nothing changes.
        await publish_events(kafka_bootstrap, prefix, [
            definition, round_defined_event(R, revision=2, phase="sample_drawn"), *deliveries(),
            sampling("confirmed", t0 - timedelta(minutes=1), 30), dispatch(t0 - timedelta(seconds=1), 3), *answers[:3],
            *sample_events(R, [("101", 19), ("751", 12)]),
            round_defined_event("ov-marker", phase="planned"),
        ])
        async with asyncio.timeout(60):  # the marker round comes after the replays on the same topic
            while (await client.get("/rounds/ov-marker/overview", headers=bearer(tokens["operator"]))).status_code != 200:
                await asyncio.sleep(0.2)
        await asyncio.sleep(1.0)  # the other topics' replays
        yield app, client


@pytest.fixture
def client(app_and_client):
    _, client = app_and_client
    client.cookies.clear()
    return client


async def test_the_overview_api_counts_what_the_events_say(client, tokens):
    body = await fetch_overview(client, tokens["operator"])
    assert body["phase"] == "in_fieldwork" and body["revision"] == 3 and body["sampling_stage"] == "drawn"
    assert body["sending"] == "sending"
    assert any("påmindelsen" in item for item in body["waits_for"]) and any("feltarbejdets slutning" in item for item in body["waits_for"])
    k = {f["kommunekode"]: f for f in body["municipalities"]}
    assert set(k) == {"101", "147", "751"}
    # Deliveries: the current one's rows, both listed, the replaced one not current.
    assert (k["101"]["rows_accepted"], k["101"]["rows_rejected"], k["101"]["rows_excluded"]) == (25, 2, 5)
    assert [(d["delivery_id"], d["current"]) for d in k["101"]["deliveries"]] == [(str(SECOND), True), (str(FIRST), False)]
    assert k["101"]["deliveries"][0]["delivered_by"] == "momentum-dev" and k["751"]["deliveries"][0]["delivered_by"] == "fasit-dev"
    assert k["147"]["deliveries"] == [] and k["147"]["sample"] is None
    # Frame, allocation, sample: the drawn snapshot (later than the confirmed one replayed late).
    assert (k["101"]["frame_population"], k["101"]["eligible"], k["101"]["sample"], k["101"]["capped"]) == (25, 24, 20, True)
    assert k["101"]["frame_exclusions"] == {"forskerbeskyttet": 1}
    assert k["101"]["expected_rate"] == pytest.approx(0.4) and k["101"]["target_answers"] == 200.0
    # Messages: the latest dispatch snapshot.
    lines = {(m["step"], m["channel"]): m for m in k["101"]["messages"]}
    assert (lines[("invitation", "letter")]["sent"], lines[("invitation", "letter")]["failed"]) == (19, 1)
    assert (lines[("reminder_1", "letter")]["planned"], lines[("reminder_1", "letter")]["skipped"]) == (15, 5)
    assert {(m["step"], m["channel"]): m["cancelled"] for m in k["751"]["messages"]} == {("invitation", "letter"): 0, ("reminder_1", "sms"): 9}
    assert k["751"]["no_contact"] == 1
    # Answers once each, by day since the invitation, and the rates.
    assert (k["101"]["invited"], k["101"]["answers"], k["751"]["answers"]) == (19, 5, 3)
    assert k["101"]["answers_by_day"][:3] == [1, 1, 3] and k["751"]["answers_by_day"][:3] == [1, 1, 1]
    assert k["101"]["response_rate"] == pytest.approx(5 / 20)
    total = body["total"]
    assert (total["rows_accepted"], total["sample"], total["answers"], total["invited"]) == (37, 32, 8, 31)
    assert total["response_rate"] == pytest.approx(8 / 32)
    assert total["answers_by_day"][:3] == [2, 2, 4] and len(total["answers_by_day"]) == len(body["days"])
    assert {(m["step"], m["channel"]): m["sent"] for m in total["messages"]}[("invitation", "letter")] == 31
    # The sample's chunks, replayed, are counted once.
    assert (total["representativeness"]["sampled"], total["representativeness"]["answered"]) == (31, 8)


async def test_the_overviews_openapi_describes_every_field(client):
    """The running service's OpenAPI document: every field of the overview's models described."""
    schemas = (await client.get("/openapi.json")).json()["components"]["schemas"]
    undescribed = [f"{model}.{name}" for model in ("RoundOverview", "Figures", "DeliveryOut", "MessageCount")
                   for name, spec in schemas[model]["properties"].items() if not spec.get("description", "").strip()]
    assert undescribed == []
    assert "sampling.progress" in schemas["RoundOverview"]["properties"]["sampling_as_of"]["description"]


async def test_only_kl_operator_sees_the_overview(client, tokens):
    for who in ("kl_reader", "aarhus"):
        assert (await client.get(f"/rounds/{R}/overview", headers=bearer(tokens[who]))).status_code == 403
        assert (await client.get(f"/dashboard/rounds/{R}", headers=bearer(tokens[who]))).status_code == 403
    assert (await client.get(f"/rounds/{R}/overview")).status_code == 401
    r = await client.get(f"/dashboard/rounds/{R}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/dashboard/login")
    assert (await client.get("/rounds/never-defined/overview", headers=bearer(tokens["operator"]))).status_code == 404


async def test_the_page_shows_the_figures_and_the_start_page_links_to_it(client, tokens):
    r = await client.get(f"/dashboard/rounds/{R}", headers=bearer(tokens["operator"]))
    assert r.status_code == 200, r.text
    assert r.headers["content-security-policy"].startswith("default-src 'none'")
    page = r.text
    assert '<html lang="da">' in page and "i feltarbejde" in page and "Svar pr. dag siden invitationen" in page
    assert "momentum-dev" in page and "fasit-dev" in page and "(loftet af max_sample)" in page
    assert "25,0 %" in page  # 101's response rate, 5 of 20
    home = await client.get("/dashboard/", headers=bearer(tokens["operator"]))
    assert f'href="/dashboard/rounds/{R}"' in home.text
    home = await client.get("/dashboard/", headers=bearer(tokens["kl_reader"]))
    assert "/dashboard/rounds/" not in home.text


async def test_representativeness_per_municipality_and_nationally(app_and_client, client, tokens, kafka_bootstrap):
    """Response rates by band, the R-indicator, CV and partial R-indicators on the overview, as the
    domain computes them from the sample and the answers; small groups' rates hidden; a Danish
    reading on the page."""
    import random

    from services.analytics.domain.representativeness import SampleCell, representativeness

    app, _ = app_and_client
    rnd = random.Random(5)
    ages = ("18-29", "30-39", "50+")
    sizes = [("101", 240), ("751", 160), ("147", 12)]
    people = {k: [Bands(gender=rnd.choice("KM"), age_band=rnd.choice(ages), duration_band=rnd.choice(["0-6m", "6m+"]))
                  for _ in range(n)] for k, n in sizes}
    responded = {k: [rnd.random() < (0.15 + 0.2 * ages.index(b.age_band) + 0.1 * (b.gender == "K")) for b in people[k]] for k, _ in sizes}
    responded["147"] = [i >= 2 for i in range(12)]  # 10 of 12 answer: 2 non-answers would show through a rate
    rid = "ov-rep"
    answers = [
        ResponseSubmitted(round_id=rid, kommunekode=k, pseudonym=f"{k}{i:061d}", questionnaire_id="kl_core", questionnaire_version=1,
                          mode="web", maalgruppe="dagpenge", stratum=f"{k}:dagpenge", bands=people[k][i], design_weight=2.0,
                          answers={"q1": 4}, submitted_at=INVITATION_AT)
        for k, _ in sizes for i in range(len(people[k])) if responded[k][i]
    ]
    await publish_events(kafka_bootstrap, app.state.settings.kafka_topic_prefix, [
        round_defined_event(rid, phase="in_fieldwork", kommuner=["101", "147", "751"]),
        *sample_events(rid, sizes, bands=lambda k, i: people[k][i]),
    ] + answers)
    op = tokens["operator"]
    async with asyncio.timeout(60):
        while True:
            r = await client.get(f"/rounds/{rid}/overview", headers=bearer(op))
            body = r.json() if r.status_code == 200 else {}
            rep = (body.get("total") or {}).get("representativeness") or {}
            if rep.get("sampled") == 412 and rep.get("answered") == len(answers):
                break
            await asyncio.sleep(0.2)

    def cells(keys):
        counts = {}
        for k, values, answered in keys:
            c = counts.setdefault((k, *values), [0, 0])
            c[0] += 1
            c[1] += answered
        return counts

    units = [(k, (b.gender, b.age_band, b.duration_band), responded[k][i]) for k, _ in sizes for i, b in enumerate(people[k])]
    national = representativeness(
        [SampleCell((key[0], "dagpenge", *key[1:]), 2.0, s, a) for key, (s, a) in sorted(cells(units).items())],
        ("kommunekode", "maalgruppe", "gender", "age_band", "duration_band"),
    )
    assert rep["r_indicator"] == pytest.approx(national.r_indicator, rel=1e-9) and rep["cv"] == pytest.approx(national.cv, rel=1e-9)
    assert rep["partial_r"] == pytest.approx(national.partial_unconditional, rel=1e-9)
    assert max(rep["partial_r"], key=rep["partial_r"].get) == "age_band"
    by = {f["kommunekode"]: f["representativeness"] for f in body["municipalities"]}
    aarhus = representativeness(
        [SampleCell(("dagpenge", *key[1:]), 2.0, s, a) for key, (s, a) in sorted(cells([u for u in units if u[0] == "751"]).items())],
        ("maalgruppe", "gender", "age_band", "duration_band"),
    )
    assert by["751"]["r_indicator"] == pytest.approx(aarhus.r_indicator, rel=1e-9)
    # Rates by band: answered / sampled, hidden below 5 answers or 5 non-answers.
    for band, index in (("gender", 0), ("age_band", 1), ("duration_band", 2)):
        for level, rate in by["101"]["response_rates"][band].items():
            mine = [u for u in units if u[0] == "101" and u[1][index] == level]
            got = sum(u[2] for u in mine)
            expected = got / len(mine) if got >= 5 and len(mine) - got >= 5 else None
            assert rate == (None if expected is None else pytest.approx(expected)), (band, level)
    assert all(rate is None for levels in by["147"]["response_rates"].values() for rate in levels.values())
    page = await client.get(f"/dashboard/rounds/{rid}", headers=bearer(op))
    assert page.status_code == 200 and "Ligner svarpersonerne stikprøven?" in page.text
    assert rep["reading"] in page.text and "R-indikator" in rep["reading"] and "aldersgruppe" in rep["reading"]


@pytest.fixture(scope="module")
async def live(app_and_client, dev_issuer):
    app, _ = app_and_client
    app.state.dashboard_token_transport = httpx.ASGITransport(app=issuer_app(dev_issuer, load_clients()))
    async with served(app) as url:
        yield url
    del app.state.dashboard_token_transport


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y chromium)")
async def test_the_page_from_the_start_page_in_chromium_passes_axe(live):
    from playwright.async_api import async_playwright

    axe = axe_source(AXE_DIR)
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 900})
            page = await context.new_page()
            csp_errors: list[str] = []
            page.on("console", lambda msg: csp_errors.append(msg.text) if "Content Security Policy" in msg.text else None)
            # KL's operator logs in and follows the start page's link.
            await page.goto(f"{live}/dashboard/")
            await page.get_by_label("Klient-id").fill("kl-operator")
            await page.get_by_label("Klienthemmelighed").fill("dev-secret-kl")
            await page.get_by_role("button", name="Log ind").click()
            await page.wait_for_url(f"{live}/dashboard/")
            await audit(page, axe, "start page")
            await page.get_by_role("link", name=f"Runde {R}: Testrunde {R}").click()
            await page.wait_for_url(f"**/dashboard/rounds/{R}")
            assert await page.locator("#phase-value").inner_text() != ""
            await audit(page, axe, "round overview")
            await page.keyboard.press("Tab")
            assert await page.evaluate("document.activeElement.className") == "skipnav"
            assert csp_errors == []
            await context.close()
        finally:
            await browser.close()
