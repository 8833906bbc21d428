"""PostgreSQL out of reach (a restart, a lost connection): the citizen gets the Danish page "Der
skete en fejl ... Prøv igen om lidt" with 503 and Retry-After, an API client a 503 JSON with
Retry-After, never a 500; when the database is back, the same link works. The service is served
over real HTTP through a TCP proxy in front of the test PostgreSQL that the test takes away
(shared/testing/outage.py): real sockets closing, no mock."""

from __future__ import annotations

import httpx
import pytest

from responses_helpers import issue
from services.responses.config import ResponsesSettings
from services.responses.main import create_app
from shared.app import DATABASE_RETRY_AFTER_SECONDS
from shared.testing.browser import needs_chromium
from shared.testing.fixtures import served, settings_from_env
from shared.testing.outage import Outage
from test_responses_browser import Checked

pytestmark = needs_chromium


@pytest.fixture(scope="module")
async def behind_outage(module_env):
    outage = Outage.in_front_of(module_env["DATABASE_URL"])
    env = {**module_env, "DATABASE_URL": await outage.proxied_url(module_env["DATABASE_URL"])}
    app = create_app(settings_from_env(ResponsesSettings, env))
    try:
        async with served(app, lifespan="on") as url:
            yield app, url, outage
    finally:
        await outage.stop()


async def test_a_database_out_of_reach_is_a_503_to_try_again_never_a_500(behind_outage, browser, axe_source, kafka_bootstrap, module_env):
    app, base, outage = behind_outage
    [token] = await issue(app, kafka_bootstrap, module_env["KAFKA_TOPIC_PREFIX"])
    context = await browser.new_context()
    page = await context.new_page()
    checked = Checked(page, axe_source)
    assert (await page.goto(f"{base}/s/{token}")).status == 200

    outage.down()
    try:
        # The citizen opening the link: a Danish page, asked to come back shortly.
        response = await page.goto(f"{base}/s/{token}")
        assert response.status == 503
        assert response.headers["retry-after"] == str(DATABASE_RETRY_AFTER_SECONDS)
        assert response.headers["content-type"].startswith("text/html")
        assert await page.locator("h1").inner_text() == "Der skete en fejl"
        assert "Prøv igen om lidt" in await page.locator("main").inner_text()
        await checked.audit("database out of reach (503)")
        async with httpx.AsyncClient(base_url=base) as client:
            # The API client: JSON, the same status and Retry-After; nothing was spent.
            r = await client.post(f"/api/survey/{token}/submission", json={"answers": {}})
            assert r.status_code == 503 and r.headers["content-type"] == "application/json", r.text
            assert r.headers["retry-after"] == str(DATABASE_RETRY_AFTER_SECONDS)
            assert "database" in r.json()["detail"]
            # The health check says which part is down.
            r = await client.get("/healthz")
            assert r.status_code == 503 and r.json()["database"].startswith("error")
    finally:
        outage.up()

    # The database back: the same link opens, and the answers go in once.
    assert (await page.goto(f"{base}/s/{token}")).status == 200
    async with httpx.AsyncClient(base_url=base) as client:
        r = await client.post(f"/api/survey/{token}/submission", json={"answers": {}})
        assert r.status_code == 201, r.text
    await context.close()
