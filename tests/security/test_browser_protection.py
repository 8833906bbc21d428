"""Every page of every service refuses to be framed, is not sniffed, and sends HSTS over HTTPS;
a form sent with cookies from another site is refused (issue 26; shared/app.py BrowserProtection)."""

from __future__ import annotations

import httpx
import pytest

from shared.testing.tools import load_tool

rules = load_tool("authz_rules")


def _https(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://borgerblik.test")


@pytest.mark.parametrize("service", list(rules.SERVICES))
async def test_every_page_has_frame_protection_and_hsts_over_https(live_services, service):
    plain = await live_services.client(service)
    pages = ["/healthz", "/openapi.json", "/docs", "/metrics", "/no-such-page"]
    pages += {"responses": ["/tilgaengelighed", "/s/unknownunknownunknown0"], "analytics": ["/dashboard/login"]}.get(service, [])
    async with _https(live_services.apps[service]) as secure:
        for path in pages:
            answer = await secure.get(path)
            assert answer.headers["x-frame-options"] == "DENY", path
            assert "frame-ancestors 'none'" in answer.headers["content-security-policy"], path
            assert answer.headers["x-content-type-options"] == "nosniff", path
            assert answer.headers["strict-transport-security"].startswith("max-age="), path
            over_http = await plain.get(path)
            assert "strict-transport-security" not in over_http.headers, path
            assert over_http.headers["x-frame-options"] == "DENY", path


async def test_pages_keep_their_own_stricter_policy(live_services):
    responses, analytics = await live_services.client("responses"), await live_services.client("analytics")
    assert "default-src 'none'" in (await responses.get("/tilgaengelighed")).headers["content-security-policy"]
    assert "default-src 'none'" in (await analytics.get("/dashboard/login")).headers["content-security-policy"]


async def test_a_form_with_cookies_from_another_site_is_refused(live_services):
    analytics = await live_services.client("analytics")
    responses = await live_services.client("responses")
    cookie = {"cookie": "bb_dashboard_session=x"}
    foreign = {**cookie, "origin": "https://evil.example"}
    for client, path, data in (
        (analytics, "/dashboard/login", {"client_id": "a", "client_secret": "b"}),
        (analytics, "/dashboard/logout", {}),
        (analytics, "/dashboard/r/r1/k/751/targets", {"question": "q13", "value": "1"}),
        (responses, "/s/unknownunknownunknown0/afmeld", {"csrf_token": "x"}),
    ):
        refused = await client.post(path, data=data, headers=foreign)
        # The API's words, or on a citizen's path the Danish page for a refused form.
        assert refused.status_code == 403 and ("cross-site" in refused.text or "Siden kunne ikke sendes" in refused.text), path
        by_referer = await client.post(path, data=data, headers={**cookie, "referer": "https://evil.example/page"})
        assert by_referer.status_code == 403, path
        by_fetch_metadata = await client.post(path, data=data, headers={**cookie, "sec-fetch-site": "cross-site", "origin": "null"})
        assert by_fetch_metadata.status_code == 403, path
        for same_site in ({"origin": "http://testserver"}, {"sec-fetch-site": "same-origin", "origin": "null"}, {"origin": "null"}):
            answer = await client.post(path, data=data, headers={**cookie, **same_site})
            assert answer.status_code != 403 or not ("cross-site" in answer.text or "Siden kunne ikke sendes" in answer.text), (path, same_site)
    # An API client with a bearer token is not a browser form: no Origin rule.
    api = await analytics.post("/rounds/r1/releases", headers={"authorization": "Bearer x", "origin": "https://evil.example", **cookie})
    assert api.status_code == 401
