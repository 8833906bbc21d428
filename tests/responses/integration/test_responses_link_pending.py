"""A citizen opens the link from the letter before responses has learnt of it (link.issued still
on its way under lag): a Danish "your link is being prepared" page, 503 with Retry-After, told
apart from an unknown link without a lookup (the token carries dispatch's tag, shared/links.py),
never draining the guessing budget; once link.issued is consumed the same link opens. A random
token, or one tagged with another key or issued long ago, stays the unknown link (404), so the
page is no oracle for guesses. Checked in headless Chromium with axe-core."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from responses_helpers import link_issued, produce, token_hash, wait_for_respondents
from services.responses.config import ResponsesSettings
from services.responses.main import create_app
from services.responses.service import link_pending
from shared.links import link_token, new_nonces
from shared.testing.browser import needs_chromium
from shared.testing.fixtures import served, settings_from_env
from test_responses_browser import Checked

pytestmark = needs_chromium


@pytest.fixture(scope="module")
async def live_pending(module_env):
    # A small guessing budget: a link being prepared must never spend it.
    app = create_app(settings_from_env(ResponsesSettings, module_env, unknown_token_per_address="3/minute"))
    async with served(app, lifespan="on") as url:
        yield app, url


def dispatch_token(module_env, now: datetime | None = None) -> str:
    """A token as dispatch issues it (services/dispatch/handlers.py: shared.links)."""
    return link_token(base64.b64decode(module_env["LINK_KEY"]), new_nonces(1, now)[0])


async def test_a_link_opened_before_responses_knows_it_is_being_prepared(live_pending, browser, axe_source,  # noqa: F811
                                                                          kafka_bootstrap, module_env):
    app, base = live_pending
    token = dispatch_token(module_env)
    context = await browser.new_context()
    page = await context.new_page()
    checked = Checked(page, axe_source)
    for _ in range(5):  # more than the budget of 3 unknown links
        response = await page.goto(f"{base}/s/{token}")
        assert response.status == 503
        assert response.headers["retry-after"] == "60"
    assert await page.locator("h1").inner_text() == "Dit link er ved at blive gjort klar"
    assert "Prøv igen om et minut" in await page.locator("main").inner_text()
    await checked.audit("the link being prepared (da)")
    response = await page.goto(f"{base}/s/{token}/side/2?lang=en")
    assert response.status == 503 and await page.locator("h1").inner_text() == "Your link is being prepared"
    await checked.audit("the link being prepared (en)")

    async with httpx.AsyncClient(base_url=base) as client:
        r = await client.post(f"/api/survey/{token}/submission", json={"answers": {}})
        assert r.status_code == 503 and r.headers["retry-after"] == "60" and "being prepared" in r.json()["detail"]
        # Guesses: a random token, one tagged under another key, one issued three days ago.
        other_key = link_token(secrets.token_bytes(32), new_nonces(1)[0])
        old = dispatch_token(module_env, datetime.now(UTC) - timedelta(days=3))
        for guess in (secrets.token_urlsafe(32), other_key, old):
            r = await client.get(f"/s/{guess}")
            assert r.status_code == 404 and "Vi kan ikke finde linket" in r.text, r.status_code
        # The budget of 3 is spent by those three guesses, never by the link being prepared.
        assert (await client.get(f"/s/{secrets.token_urlsafe(32)}")).status_code == 429
        assert (await client.get(f"/s/{token}")).status_code == 503

    # link.issued arrives: the same link opens.
    await produce(kafka_bootstrap, module_env["KAFKA_TOPIC_PREFIX"], [link_issued(token)])
    await wait_for_respondents(app.state.runtime, [token_hash(token)])
    response = await page.goto(f"{base}/s/{token}")
    assert response.status == 200
    await context.close()


def test_only_a_token_dispatch_issued_recently_is_pending():
    key = secrets.token_bytes(32)
    settings = ResponsesSettings(link_key=base64.b64encode(key).decode(), link_pending_hours=48)
    now = datetime.now(UTC)
    fresh = link_token(key, new_nonces(1, now)[0])
    assert link_pending(settings, fresh, now)
    assert link_pending(settings, fresh, now + timedelta(hours=47))
    assert not link_pending(settings, fresh, now + timedelta(hours=49))
    assert not link_pending(settings, fresh, now - timedelta(minutes=5))  # issued "in the future": not ours
    assert not link_pending(settings, link_token(key, secrets.token_bytes(16)), now)  # a link of 16-byte nonce
    # One character off (in the middle: the last character of unpadded base64 carries padding
    # bits, so "A" and "B" there can decode to the same bytes).
    middle = len(fresh) // 2
    assert not link_pending(settings, fresh[:middle] + ("A" if fresh[middle] != "A" else "B") + fresh[middle + 1:], now)
    assert not link_pending(ResponsesSettings(link_key=None), fresh, now)  # without the key, nothing is pending
