"""Municipal login: the OIDC authorization-code flow (authlib, PKCE) against a local provider
standing in for the broker in front of FK Adgangsstyring; the broker's claims become the same
Principal as a bearer token, with the same 403s."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import httpx
import pytest

from dashboard_helpers import form_token
from oidc_provider import Provider, serve
from services.analytics.dashboard import oidc, sessions

R = "2026-1"


@pytest.fixture(scope="module")
async def provider():
    async with serve(Provider()) as p:
        yield p


@pytest.fixture
def configured(provider, monkeypatch):
    monkeypatch.setenv("DASHBOARD_OIDC_ISSUER", provider.base)
    monkeypatch.setenv("DASHBOARD_OIDC_CLIENT_ID", provider.client_id)
    monkeypatch.setenv("DASHBOARD_OIDC_CLIENT_SECRET", provider.client_secret)
    monkeypatch.setenv("DASHBOARD_OIDC_KOMMUNE_MAP", '{"55133018": "751"}')  # Aarhus' CVR number
    return provider


async def login(client, provider, next_path: str) -> httpx.Response:
    r = await client.get("/dashboard/login/oidc", params={"next": next_path})
    assert r.status_code == 302, r.text
    location = r.headers["location"]
    assert location.startswith(f"{provider.base}/authorize?")
    query = parse_qs(urlparse(location).query)
    assert query["code_challenge_method"] == ["S256"] and query["nonce"] and query["state"]
    async with httpx.AsyncClient() as browser:
        back = await browser.get(location)
    assert back.status_code == 302
    callback = urlparse(back.headers["location"])
    assert callback.path == "/dashboard/oidc/callback"
    return await client.get(f"{callback.path}?{callback.query}")


async def test_oidc_login_maps_claims_to_the_principal(client, configured):
    provider = configured
    r = await client.get("/dashboard/login", params={"next": f"/dashboard/r/{R}/k/751"})
    assert 'id="login-oidc"' in r.text and "Fælleskommunal Adgangsstyring" in r.text

    provider.user = {"sub": "u-1", "preferred_username": "anna@aarhus.dk", "roles": ["borgerblik-laes", "other"],
                     "kommunekode": "55133018"}
    r = await login(client, provider, f"/dashboard/r/{R}/k/751/fair")
    assert r.status_code == 200, r.text
    assert f'content="0; url=/dashboard/r/{R}/k/751/fair"' in r.text
    cookie = next(v for k, v in r.headers.multi_items() if k == "set-cookie" and v.startswith(sessions.HTTP_COOKIE)).lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/dashboard" in cookie
    page = await client.get(f"/dashboard/r/{R}/k/751")
    assert page.status_code == 200 and "anna@aarhus.dk" in page.text
    assert (await client.get(f"/dashboard/r/{R}/k/national")).status_code == 200
    for path in ("", "/fair", "/texts", "/chart/themes.png"):
        assert (await client.get(f"/dashboard/r/{R}/k/101{path}")).status_code == 403
    # the cookie is an id the server issued: another value is no session
    value = client.cookies.get(sessions.HTTP_COOKIE)
    tampered = value[:-4] + ("aaaa" if not value.endswith("aaaa") else "bbbb")
    assert (await client.get(f"/dashboard/r/{R}/k/751", headers={"cookie": f"{sessions.HTTP_COOKIE}={tampered}"})).status_code == 303
    r = await client.post("/dashboard/logout", data={"csrftoken": await form_token(client, f"/dashboard/r/{R}/k/751")})
    assert r.status_code == 303 and sessions.HTTP_COOKIE in r.headers.get("set-cookie", "")


async def test_kl_role_sees_all_and_a_user_without_a_role_gets_no_session(client, configured):
    provider = configured
    provider.user = {"sub": "u-2", "roles": "borgerblik-kl"}
    r = await login(client, provider, f"/dashboard/r/{R}/k/101")
    assert r.status_code == 200
    assert (await client.get(f"/dashboard/r/{R}/k/101")).status_code == 200
    assert (await client.get(f"/dashboard/r/{R}/k/national/texts")).status_code == 200
    client.cookies.clear()

    provider.user = {"sub": "u-3", "roles": ["something-else"], "kommunekode": "751"}
    r = await login(client, provider, f"/dashboard/r/{R}/k/751")
    assert r.status_code == 403 and "ingen rolle" in r.text
    assert sessions.HTTP_COOKIE not in client.cookies
    assert (await client.get(f"/dashboard/r/{R}/k/751")).status_code == 303


async def test_a_callback_is_good_once_and_needs_its_own_browser(client, configured):
    provider = configured
    provider.user = {"sub": "u-4", "roles": ["borgerblik-laes"], "kommunekode": "751"}
    r = await client.get("/dashboard/login/oidc", params={"next": "/dashboard/"})
    async with httpx.AsyncClient() as browser:
        back = await browser.get(r.headers["location"])
    callback = urlparse(back.headers["location"])
    # another browser (no flow cookie) presenting the code: refused
    flow = client.cookies.get(oidc.FLOW_COOKIE)
    client.cookies.delete(oidc.FLOW_COOKIE)
    assert (await client.get(f"{callback.path}?{callback.query}")).status_code == 401
    client.cookies.set(oidc.FLOW_COOKIE, flow, path="/dashboard")
    assert (await client.get(f"{callback.path}?{callback.query}")).status_code == 200
    client.cookies.clear()
    client.cookies.set(oidc.FLOW_COOKIE, flow, path="/dashboard")
    assert (await client.get(f"{callback.path}?{callback.query}")).status_code == 401  # the code is spent


def test_claims_mapping_is_configuration():
    cfg = oidc.OidcSettings(client_id="x", issuer="https://broker.example", roles_claim="realm_access.roles",
                            kommune_claim="kommune", role_scopes={"laes": ["aggregates:read"]}, kommune_map={"29189404": "461"})
    p = oidc.principal_from_claims({"sub": "s", "realm_access": {"roles": ["laes"]}, "kommune": ["29189404", "101", "evil"]}, cfg)
    assert p.scopes == frozenset({"aggregates:read"}) and p.kommunekoder == frozenset({"461", "101"}) and not p.all_kommuner
    assert oidc.principal_from_claims({"sub": "s"}, cfg).scopes == frozenset()
    assert cfg.metadata_url == "https://broker.example/.well-known/openid-configuration"


async def test_municipal_login_off_without_configuration(client, monkeypatch):
    for name in ("ISSUER", "DISCOVERY_URL", "CLIENT_ID"):
        monkeypatch.delenv(f"DASHBOARD_OIDC_{name}", raising=False)
    assert (await client.get("/dashboard/login/oidc")).status_code == 404
    assert 'id="login-oidc"' not in (await client.get("/dashboard/login")).text
