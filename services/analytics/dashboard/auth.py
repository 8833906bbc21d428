"""Who is looking: the API's bearer token, or (browsers) the dashboard's server-side session.

Locally, /dashboard/login takes a dev client's id and secret, asks the dev issuer's token
endpoint (client-credentials grant) for an access token and verifies it with the service's own
JWKS-backed Authenticator; the token itself is then dropped. In production municipal users log
in through an OIDC broker in front of KOMBIT's Fælleskommunal Adgangsstyring (:mod:`.oidc`).
Either way the verified Principal goes into a server-side session (:mod:`.sessions`) and the
browser gets only its opaque id: no access token ever reaches the browser, and a copied cookie
opens nothing outside the dashboard (no service accepts it as a bearer token) and nothing after
logout, expiry or idleness.
"""

from __future__ import annotations

import os
from urllib.parse import quote, urlparse

import httpx
from fastapi import HTTPException, Request, status

from services.analytics.dashboard import sessions
from shared.auth import Principal, ensure_scopes
from shared.ratelimit import CredentialBudget

SCOPE = "aggregates:read"


def token_url() -> str:
    return os.environ.get("DASHBOARD_TOKEN_URL", "http://127.0.0.1:8000/oauth/token")


def dev_login_enabled() -> bool:
    flag = os.environ.get("DASHBOARD_DEV_LOGIN")
    if flag is not None:
        return flag.lower() in ("1", "true", "yes")
    return urlparse(token_url()).hostname in ("127.0.0.1", "localhost", "::1")


def _login_redirect(request: Request, ended: bool) -> HTTPException:
    """To the login page, and back here after it; ``ended``: the browser's session has ended
    (expired, idle or logged out), which the login page says."""
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    reason = "&ended=1" if ended else ""
    return HTTPException(status.HTTP_303_SEE_OTHER, detail="login required",
                         headers={"Location": f"/dashboard/login?next={quote(target, safe='')}{reason}"})


def require_dashboard_scopes(*scopes: str):
    """Dependency: the bearer header (API clients, tests), verified like every API token, or the
    dashboard's server-side session (browsers), holding every one of ``scopes``; neither sends a
    browser to the login page. (Named require_* with ``scopes`` in its closure, as
    shared.auth.require_scopes, so tools/authz_rules.py reads the rule from the code.)"""

    async def dependency(request: Request) -> Principal:
        header = request.headers.get("authorization", "")
        if header.lower().startswith("bearer "):
            principal = await request.app.state.authenticator.verify(header[7:].strip())
        else:
            # the session of either login: the Principal, never a token
            principal, sent = await sessions.current(request)
            if principal is None:
                raise _login_redirect(request, ended=sent)
        return ensure_scopes(principal, scopes)

    dependency.__name__ = f"require_dashboard_{'_'.join(s.replace(':', '_') for s in scopes)}"
    return dependency


dashboard_principal = require_dashboard_scopes(SCOPE)


def failed_logins(app) -> CredentialBudget:
    """The dashboard login's budget of failures, per client id and per address (backoff in minute,
    hour and day windows; shared/ratelimit.py), one per app."""
    budget = getattr(app.state, "dashboard_failed_logins", None)
    if budget is None:
        budget = app.state.dashboard_failed_logins = CredentialBudget("analytics", "dashboard_login")
    return budget


async def fetch_token(request: Request, client_id: str, client_secret: str) -> tuple[str, int] | None:
    """Client-credentials grant at the dev issuer. Tests put an ASGI transport on app.state."""
    transport = getattr(request.app.state, "dashboard_token_transport", None)
    async with httpx.AsyncClient(transport=transport, timeout=10) as client:
        try:
            # The person's address, for the token endpoint's limit per address (the dev issuer
            # believes it from the dashboard's host only: its trusted proxies).
            forwarded = {"X-Forwarded-For": request.client.host} if request.client else {}
            r = await client.post(token_url(), data={"grant_type": "client_credentials", "client_id": client_id,
                                                     "client_secret": client_secret}, headers=forwarded)
        except httpx.HTTPError:
            return None
    if r.status_code != 200:
        return None
    body = r.json()
    return body["access_token"], int(body.get("expires_in", 3600))


def safe_next(value: str | None) -> str:
    """Only a path inside the dashboard (no open redirect)."""
    if value and value.startswith("/dashboard") and not value.startswith("//") and "\\" not in value:
        return value
    return "/dashboard/"
