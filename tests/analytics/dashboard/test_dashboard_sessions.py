"""The dashboard's server-side sessions and its forms' CSRF token (issue 26), through the analytics
service served by uvicorn: the cookie is an opaque id; logout, expiry and idleness end the session
(the login page says so, in Danish); a login never keeps a planted id; ended sessions are purged
by the service's own loop; every form post needs its token."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from dashboard_helpers import CSRF_FIELD, form_token
from services.analytics.config import AnalyticsSettings
from services.analytics.dashboard import sessions
from services.analytics.dashboard.models import DashboardSession
from services.analytics.main import create_app
from shared.auth.dev_issuer import create_app as issuer_app
from shared.auth.dev_issuer import load_clients
from shared.testing.fixtures import running_app, served as serving, settings_from_env

AARHUS = {"client_id": "aarhus-bi", "client_secret": "dev-secret-aarhus"}


@pytest.fixture(scope="module")
async def served(module_env, dev_issuer):
    """The analytics service (no rounds: the session routes need none) on a free port, its ended
    sessions purged every 0.2 s."""
    os.environ["DASHBOARD_SESSION_PURGE_INTERVAL_SECONDS"] = "0.2"
    try:
        app = create_app(settings_from_env(AnalyticsSettings, module_env))
    finally:
        del os.environ["DASHBOARD_SESSION_PURGE_INTERVAL_SECONDS"]
    app.state.dashboard_token_transport = httpx.ASGITransport(app=issuer_app(dev_issuer, load_clients()))
    async with running_app(app):
        async with serving(app) as url:
            yield app, url


@pytest.fixture(autouse=True)
def dev_login(monkeypatch):
    monkeypatch.delenv("DASHBOARD_DEV_LOGIN", raising=False)
    monkeypatch.delenv("DASHBOARD_TOKEN_URL", raising=False)


def browser(base: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base)


async def log_in(client: httpx.AsyncClient, credentials: dict = AARHUS) -> httpx.Response:
    r = await client.post("/dashboard/login", data={**credentials, "csrftoken": await form_token(client)})
    assert r.status_code == 303, r.text
    return r


async def row(app, cookie: str) -> dict | None:
    """The stored session of a cookie's id (kept under the id's SHA-256)."""
    async with app.state.runtime.uow() as uow:
        found = await uow.session.get(DashboardSession, hashlib.sha256(cookie.encode()).hexdigest())
        return None if found is None else {c.key: getattr(found, c.key) for c in DashboardSession.__table__.columns}


async def age(app, cookie: str, **values) -> None:
    async with app.state.runtime.uow() as uow:
        await uow.session.execute(sa.update(DashboardSession)
                                  .where(DashboardSession.id_hash == hashlib.sha256(cookie.encode()).hexdigest()).values(**values))
        await uow.commit()


async def test_login_gives_an_opaque_server_side_session_and_logout_ends_it(served):
    app, base = served
    async with browser(base) as client:
        r = await log_in(client)
        header = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith(sessions.HTTP_COOKIE)).lower()
        assert "httponly" in header and "samesite=lax" in header and "path=/dashboard" in header and "secure" not in header
        cookie = client.cookies.get(sessions.HTTP_COOKIE)
        assert re.fullmatch(r"[0-9a-f]{32}", cookie)  # 128 random bits: not a JWT, nothing to decrypt
        stored = await row(app, cookie)
        assert (stored["subject"], stored["scopes"], stored["kommunekoder"]) == ("aarhus-bi", ["aggregates:read"], ["751"])
        assert stored["expires_at"] - stored["created_at"] == timedelta(seconds=sessions.SessionSettings().seconds)
        home = await client.get("/dashboard/")
        assert home.status_code == 200 and "aarhus-bi" in home.text

        # logout is a form: without its token it is refused (a Danish page), with it the session ends
        refused = await client.post("/dashboard/logout", data={})
        assert refused.status_code == 403 and "Formularen blev afvist" in refused.text
        assert (await client.get("/dashboard/")).status_code == 200
        r = await client.post("/dashboard/logout", data={"csrftoken": await form_token(client, "/dashboard/")})
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/login"
        assert sessions.HTTP_COOKIE not in client.cookies and await row(app, cookie) is None

    # the old cookie, replayed, opens nothing: back to the login page, which says why
    async with browser(base) as replay:
        replay.cookies.set(sessions.HTTP_COOKIE, cookie, domain="127.0.0.1", path="/dashboard")
        r = await replay.get("/dashboard/r/2026-1/k/751")
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/login?next=%2Fdashboard%2Fr%2F2026-1%2Fk%2F751&ended=1"
        page = await replay.get(r.headers["location"])
        assert "Din session er udløbet eller afsluttet. Log ind igen." in page.text


async def test_idle_and_expired_sessions_are_refused(served):
    app, base = served
    for aged in ({"last_seen_at": datetime.now(UTC) - timedelta(hours=1)},  # idle past 30 minutes
                 {"expires_at": datetime.now(UTC) - timedelta(seconds=1)}):  # past its lifetime, however active
        async with browser(base) as client:
            await log_in(client)
            assert (await client.get("/dashboard/")).status_code == 200
            await age(app, client.cookies.get(sessions.HTTP_COOKIE), **aged)
            r = await client.get("/dashboard/", params={"lang": "en"})
            assert r.status_code == 303 and r.headers["location"].endswith("&ended=1"), aged
            assert "Din session er udløbet" in (await client.get(r.headers["location"])).text
            # a request does not bring an ended session back
            assert (await client.get("/dashboard/")).status_code == 303


async def test_a_login_never_keeps_a_planted_session_id(served):
    app, base = served
    async with browser(base) as attacker:
        await log_in(attacker)
        known = attacker.cookies.get(sessions.HTTP_COOKIE)
    async with browser(base) as victim:
        victim.cookies.set(sessions.HTTP_COOKIE, known, domain="127.0.0.1", path="/dashboard")  # a planted id, even a live one
        await log_in(victim)
        fresh = victim.cookies.get(sessions.HTTP_COOKIE)
        assert fresh != known and await row(app, known) is None and await row(app, fresh) is not None
        victim.cookies.set(sessions.HTTP_COOKIE, "0" * 32, domain="127.0.0.1", path="/dashboard")  # an id nobody was given
        await log_in(victim)
        assert victim.cookies.get(sessions.HTTP_COOKIE) != "0" * 32 and await row(app, "0" * 32) is None


async def test_logout_everywhere_ends_every_session_of_the_user(served):
    app, base = served
    async with browser(base) as laptop, browser(base) as phone, browser(base) as colleague:
        for client in (laptop, phone):
            await log_in(client)
        await log_in(colleague, {"client_id": "kl-operator", "client_secret": next(
            c.client_secret for c in load_clients().values() if c.client_id == "kl-operator")})
        r = await laptop.post("/dashboard/logout", data={"everywhere": "1", "csrftoken": await form_token(laptop, "/dashboard/")})
        assert r.status_code == 303
        assert (await phone.get("/dashboard/")).status_code == 303
        assert (await colleague.get("/dashboard/")).status_code == 200


async def test_ended_sessions_are_purged_by_the_service(served):
    app, base = served
    async with browser(base) as idle, browser(base) as active:
        await log_in(idle)
        await log_in(active)
        gone = idle.cookies.get(sessions.HTTP_COOKIE)
        await age(app, gone, last_seen_at=datetime.now(UTC) - timedelta(hours=1))
        async with asyncio.timeout(10):
            while await row(app, gone) is not None:
                await asyncio.sleep(0.1)
        assert await row(app, active.cookies.get(sessions.HTTP_COOKIE)) is not None
    async with app.state.runtime.uow() as uow:
        await uow.session.execute(sa.update(DashboardSession).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
        await uow.commit()
    await sessions.purge(app.state.runtime.uow)  # what the loop runs
    async with app.state.runtime.uow() as uow:
        assert (await uow.session.execute(sa.select(sa.func.count()).select_from(DashboardSession))).scalar() == 0


async def test_forms_need_their_token_and_cross_site_forms_are_refused(served):
    app, base = served
    async with browser(base) as client:
        await log_in(client)
        target = {"question": "q13", "indicator": "mean", "value": "4"}
        for headers in ({}, {"origin": "https://evil.example"}, {"sec-fetch-site": "cross-site"}):
            r = await client.post("/dashboard/r/2026-1/k/751/targets", data=target, headers=headers)
            assert r.status_code == 403, headers
        # the login form too, even from a browser without cookies (no login CSRF)
        async with browser(base) as fresh:
            assert (await fresh.post("/dashboard/login", data=AARHUS)).status_code == 403
            r = await fresh.post("/dashboard/login", data={**AARHUS, "csrftoken": await form_token(client)})
            assert r.status_code == 403  # another browser's token does not match this one's cookie


async def test_over_https_the_cookies_are_host_prefixed_and_secure(served):
    app, _ = served
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://borgerblik.test") as client:
        page = await client.get("/dashboard/login")
        csrf_cookie = page.headers["set-cookie"]
        assert csrf_cookie.startswith("__Host-bb_csrf=") and "Secure" in csrf_cookie and "Path=/;" in csrf_cookie
        r = await client.post("/dashboard/login", data={**AARHUS, "csrftoken": CSRF_FIELD.search(page.text).group(1)})
        assert r.status_code == 303, r.text
        header = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith(sessions.HTTPS_COOKIE)).lower()
        assert "secure" in header and "path=/;" in header and "httponly" in header and "samesite=lax" in header and "domain" not in header
        assert (await client.get("/dashboard/")).status_code == 200


async def test_a_request_in_flight_does_not_bring_an_ended_session_back(served):
    """starsessions saves the session as every request ends: a request that loaded the session
    before a logout (another tab, or logout everywhere) saves it after. That save, like one under
    an id the server never issued, creates nothing."""
    app, base = served
    store = app.state.dashboard_sessions
    lifetime = store.settings.seconds
    async with browser(base) as client:
        await log_in(client)
        cookie = client.cookies.get(sessions.HTTP_COOKIE)
        loaded = await store.read(cookie, lifetime)  # what the request in flight holds
        assert b'"sub": "aarhus-bi"' in loaded
        await store.remove(cookie)  # the logout meanwhile
        await store.write(cookie, loaded, lifetime, lifetime)
        assert await row(app, cookie) is None
        assert (await client.get("/dashboard/")).status_code == 303
        await store.write("f" * 32, loaded, lifetime, lifetime)
        assert await row(app, "f" * 32) is None
