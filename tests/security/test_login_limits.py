"""Wrong secrets slow down (issue 26): the token endpoint (dev issuer) and the dashboard login
keep a budget of failures per client id and per address, with backoff (minute, hour and day
windows), logged and counted in /metrics (shared/ratelimit.py)."""

from __future__ import annotations

import logging
import re
import time

import httpx
from prometheus_client import REGISTRY
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from shared.auth.dev_issuer import create_app as issuer_app
from shared.auth.dev_issuer import load_clients
from shared.ratelimit import FailureBudget


def _client(app, address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=(address, 40000)), base_url="http://issuer")


async def _form_token(client: httpx.AsyncClient, path: str = "/dashboard/login") -> str:
    """The CSRF token of a dashboard page's forms (its cookie stays in the client's jar)."""
    return re.search(r'name="csrftoken" value="([^"]+)"', (await client.get(path)).text).group(1)


def _grant(client_id: str, secret: str) -> dict:
    return {"grant_type": "client_credentials", "client_id": client_id, "client_secret": secret}


def _refusals(service: str, limit: str, kind: str) -> float:
    return REGISTRY.get_sample_value("borgerblik_rate_limited_total", {"service": service, "limit": limit, "key_kind": kind}) or 0.0


async def test_token_endpoint_slows_wrong_secrets_per_address_and_per_client(dev_issuer, caplog):
    app = issuer_app(dev_issuer, load_clients())
    refused_before = _refusals("dev-issuer", "token_endpoint", "address")
    caplog.set_level(logging.WARNING, logger="shared.ratelimit")
    async with _client(app, "203.0.113.9") as guesser, _client(app, "198.51.100.7") as owner:
        started = time.perf_counter()
        statuses = [(await guesser.post("/oauth/token", data=_grant("aarhus-bi", f"wrong-{i}"))).status_code for i in range(200)]
        elapsed = time.perf_counter() - started
        assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}
        refused = await guesser.post("/oauth/token", data=_grant("aarhus-bi", "dev-secret-aarhus"))
        assert refused.status_code == 429 and 0 < int(refused.headers["retry-after"]) <= 60
        # The client itself, from its own address, still gets its token: 5 failures of its id so far.
        assert (await owner.post("/oauth/token", data=_grant("aarhus-bi", "dev-secret-aarhus"))).status_code == 200
    # Spread over addresses, failures of one client id are limited too (10 a minute).
    for i in range(5):
        async with _client(app, f"192.0.2.{i}") as elsewhere:
            assert (await elsewhere.post("/oauth/token", data=_grant("aarhus-bi", "wrong"))).status_code == 401
    async with _client(app, "192.0.2.200") as fresh:
        assert (await fresh.post("/oauth/token", data=_grant("aarhus-bi", "wrong"))).status_code == 429
        assert (await fresh.post("/oauth/token", data=_grant("momentum-dev", "dev-secret-momentum"))).status_code == 200
    print(f"token endpoint: 200 wrong secrets from one address in {elapsed:.2f}s, 195 of them refused with 429")
    assert _refusals("dev-issuer", "token_endpoint", "address") >= refused_before + 195
    assert any("rate limit" in record.getMessage() for record in caplog.records)


async def test_dashboard_login_slows_wrong_secrets(dev_issuer, monkeypatch, live_services):
    monkeypatch.delenv("DASHBOARD_DEV_LOGIN", raising=False)
    monkeypatch.delenv("DASHBOARD_TOKEN_URL", raising=False)
    await live_services.client("analytics")
    app = live_services.apps["analytics"]
    # The issuer as shared/auth/dev_issuer.py runs it: the dashboard's host (127.0.0.1) is a trusted
    # proxy, so each person's failures count against their own address there too.
    issuer = ProxyHeadersMiddleware(issuer_app(dev_issuer, load_clients()), trusted_hosts="127.0.0.1")
    app.state.dashboard_token_transport = httpx.ASGITransport(app=issuer)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("203.0.113.10", 1)), base_url="http://t") as browser:
            statuses, token = [], await _form_token(browser)
            for i in range(8):
                r = await browser.post("/dashboard/login", data={"client_id": "aarhus-bi", "client_secret": f"wrong-{i}", "csrftoken": token})
                statuses.append(r.status_code)
            assert statuses == [401] * 5 + [429] * 3
            assert "For mange mislykkede login" in r.text and int(r.headers["retry-after"]) > 0
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("198.51.100.11", 1)), base_url="http://t") as other:
            r = await other.post("/dashboard/login", data={"client_id": "aarhus-bi", "client_secret": "dev-secret-aarhus",
                                                            "csrftoken": await _form_token(other)})
            assert r.status_code == 303  # the client, from its own address, logs in
        assert _refusals("analytics", "dashboard_login", "address") >= 3
    finally:
        del app.state.dashboard_token_transport


def test_more_failures_wait_longer():
    """The backoff: the first window's budget costs a second, the next one a minute."""
    budget = FailureBudget("test", "backoff", "2/second;3/minute")
    key = ("address", "192.0.2.1")
    assert budget.refused(key) is None
    assert budget.failed(key) is None and budget.failed(key) is None
    assert budget.refused(key) == 1  # two failures this second: wait for the next
    time.sleep(1.1)
    assert budget.refused(key) is None
    assert budget.failed(key) is None  # the third this minute: the minute's budget is spent
    assert 50 < budget.refused(key) <= 60


async def test_a_replayed_dashboard_cookie_opens_nothing_outside_the_dashboard(dev_issuer, monkeypatch, live_services):
    """The dev login keeps the access token on the server: the cookie is an opaque session id,
    which no service takes as a bearer token; after logout it opens not even the dashboard."""
    monkeypatch.delenv("DASHBOARD_DEV_LOGIN", raising=False)
    monkeypatch.delenv("DASHBOARD_TOKEN_URL", raising=False)
    analytics = await live_services.client("analytics")
    app = live_services.apps["analytics"]
    app.state.dashboard_token_transport = httpx.ASGITransport(app=issuer_app(dev_issuer, load_clients()))
    try:
        # KL's operator: its token opens every service's administration
        operator = next(c for c in load_clients().values() if c.client_id == "kl-operator")
        r = await analytics.post("/dashboard/login", data={"client_id": operator.client_id, "client_secret": operator.client_secret,
                                                           "csrftoken": await _form_token(analytics)})
        assert r.status_code == 303, r.text
        cookie = analytics.cookies.get("bb_dashboard_session")
        assert cookie and re.fullmatch(r"[0-9a-f]{32}", cookie)  # an id: not a JWT, nothing sealed inside
        home = await analytics.get("/dashboard/")
        assert home.status_code in (200, 303) and not home.headers.get("location", "").startswith("/dashboard/login")
        for service, path in (("sampling", "/rounds/r1/frame"), ("dispatch", "/rounds/r1/status"), ("analytics", "/rounds/r1/indicators"),
                              ("ingest", "/rounds"), ("responses", "/api/admin/rounds/r1/questionnaire")):
            client = await live_services.client(service)
            replayed = await client.get(path, headers={"Authorization": f"Bearer {cookie}"})
            assert replayed.status_code == 401, (service, replayed.status_code)
        r = await analytics.post("/dashboard/logout", data={"csrftoken": await _form_token(analytics, "/dashboard/login")})
        assert r.status_code == 303
        assert not analytics.cookies.get("bb_dashboard_session")
        assert (await analytics.get("/dashboard/")).status_code == 303
        # the copied cookie, replayed after logout: the session is gone on the server
        replayed = await analytics.get("/dashboard/", headers={"cookie": f"bb_dashboard_session={cookie}"})
        assert replayed.status_code == 303 and replayed.headers["location"].endswith("&ended=1")
    finally:
        del app.state.dashboard_token_transport
        analytics.cookies.clear()
