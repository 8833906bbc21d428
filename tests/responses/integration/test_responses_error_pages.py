"""Every error a citizen can meet is a Danish page in the design system, checked in headless
Chromium with axe-core (WCAG 2.1 A/AA): a link cut after /s/, a path that climbs out (/s/..%2F..),
a page number that is no number, an unknown path under /s/, a method the page does not take,
too many unknown links, a fault of ours; the API keeps its JSON."""

from __future__ import annotations


import httpx
import pytest

from responses_helpers import issue
from services.responses.config import ResponsesSettings
from services.responses.main import create_app
from shared.testing.browser import CHROMIUM, CHROMIUM_ARGS, needs_chromium
from shared.testing.fixtures import served, settings_from_env
from test_responses_browser import Checked

pytestmark = needs_chromium


@pytest.fixture(scope="module")
async def live_strict(module_env):
    """Its own service: a small budget of unknown links (429 is reached), and one route that
    fails the way a fault of ours would (the 5xx page), added to this instance only."""
    app = create_app(settings_from_env(ResponsesSettings, module_env, unknown_token_per_address="6/minute"))

    async def fault(token: str):
        raise RuntimeError("a fault of ours")

    app.router.add_api_route("/s/{token}/fejl", fault, include_in_schema=False)
    async with served(app, lifespan="on") as url:
        yield app, url


async def test_every_citizen_error_is_a_danish_page(live_strict, browser, axe_source, kafka_bootstrap, module_env):  # noqa: F811
    app, base = live_strict
    [token] = await issue(app, kafka_bootstrap, module_env["KAFKA_TOPIC_PREFIX"])
    context = await browser.new_context()
    page = await context.new_page()
    checked = Checked(page, axe_source)
    cases = [
        ("/s/", 404, "Siden findes ikke", False),
        ("/s", 404, "Siden findes ikke", False),
        ("/s/..%2F..", 404, "Siden findes ikke", False),
        (f"/s/{token}/side/abc", 422, "Adressen kan ikke læses", True),
        (f"/s/{token}/noget-andet", 404, "Siden findes ikke", True),
        (f"/s/{token}/side/1/mere", 404, "Siden findes ikke", True),
        (f"/s/{token}/fejl", 500, "Der skete en fejl", True),
        (f"/s/{token}/side/abc?lang=en", 422, "The address cannot be read", True),
    ]
    for path, status, heading, back in cases:
        response = await page.goto(base + path)
        assert response.status == status, (path, response.status)
        assert response.headers["content-type"].startswith("text/html"), path
        assert await page.locator("h1").inner_text() == heading, path
        assert await page.get_attribute("html", "lang") == ("en" if "lang=en" in path else "da")
        link = page.get_by_role("link", name="Go to the start of the questionnaire" if "lang=en" in path else "Gå til spørgeskemaets start")
        assert await link.count() == (1 if back else 0), path
        await checked.audit(f"{path} ({status})")
    # the way back leads to the questionnaire's start
    await page.goto(f"{base}/s/{token}/side/abc")
    await page.get_by_role("link", name="Gå til spørgeskemaets start").click()
    await page.wait_for_url(f"**/s/{token}")
    assert await page.locator("h1").count() == 1

    async with httpx.AsyncClient(base_url=base) as client:
        # 405: a method the page does not take; the page keeps the Allow header
        r = await client.put(f"/s/{token}")
        assert r.status_code == 405 and r.headers["content-type"].startswith("text/html") and "Allow" in r.headers
        assert "Siden kan ikke bruges på den måde" in r.text and r.headers["content-security-policy"]
        # the API under /api/ keeps its JSON
        r = await client.get("/api/survey/x/nope")
        assert r.status_code == 404 and r.headers["content-type"] == "application/json"
        r = await client.post("/api/survey/abc/submission", json={"answers": "no"})
        assert r.headers["content-type"] == "application/json"

    # too many unknown links: 429 with Retry-After
    response = await page.goto(f"{base}/s/" + "x" * 30)
    statuses = [response.status]
    for i in range(10):
        response = await page.goto(f"{base}/s/" + f"{i}" * 30)
        statuses.append(response.status)
        if response.status == 429:
            break
    assert statuses[-1] == 429 and statuses[0] == 404, statuses
    assert await page.locator("h1").inner_text() == "For mange forsøg" and response.headers["retry-after"]
    await checked.audit("429")
    await context.close()
